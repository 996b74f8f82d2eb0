"""Unsupervised MT (plm/objectives/unsupervised_mt.py): the DAE noise row by row, the
denoising pairs, back-translation inside the step on configs/mass.py:tiny sizes (the other
language, greedy search's tokens, no gradient through the generation), and both heads'
losses in the train step's metrics."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mass as mass_config
from plm import models, run, train
from plm.decode import seq2seq
from plm.data import mixing, rows as rows_lib, sentences
from plm.objectives import base, unsupervised_mt as umt

PAD, BOS, EOS, MASK = 0, 2, 3, 4  # plm's tokenizer ids (unk = 1)
FIRST_WORD = 5


def sentence_batch(words_list, length, langs):
  """Sentence rows as plm.data.sentences lays them out; `langs` one id per row."""
  out = {k: np.zeros((len(words_list), length), np.int32) for k in sentences.KEYS}
  for r, (words, lang) in enumerate(zip(words_list, langs)):
    n = len(words) + 2
    out['tokens'][r, :n] = [BOS, *words, EOS]
    out['segment_ids'][r, :n] = 1
    out['positions'][r, :n] = np.arange(n)
    out['langs'][r, :n] = lang
  return out


def distinct_words(rng, rows, length):
  """Rows of distinct word ids (FIRST_WORD + original index - 1), 1 .. length - 2 words."""
  return [list(FIRST_WORD + np.arange(rng.integers(1, length - 1))) for _ in range(rows)]


@functools.partial(jax.jit, static_argnames=('word_dropout', 'shuffle'))
def noisy(rng, batch, word_dropout, shuffle):
  return umt.noise(rng, batch, word_dropout=word_dropout, shuffle=shuffle, pad_id=PAD)


def check_layout(out, lang):
  """bos first, eos last, pad after; segment ids, positions and langs on the real tokens."""
  for r in range(len(out['tokens'])):
    n = int(out['segment_ids'][r].sum())
    row = out['tokens'][r]
    assert row[0] == BOS and row[n - 1] == EOS and not row[n:].any(), row
    assert not np.isin(row[1:n - 1], (PAD, BOS, EOS)).any(), row
    np.testing.assert_array_equal(out['segment_ids'][r], np.arange(len(row)) < n)
    np.testing.assert_array_equal(out['positions'][r], np.where(np.arange(len(row)) < n,
                                                                np.arange(len(row)), 0))
    np.testing.assert_array_equal(out['langs'][r], np.where(np.arange(len(row)) < n, lang[r], 0))


def test_word_dropout_rate_order_and_bos_eos_kept():
  rng = np.random.default_rng(0)
  words = distinct_words(rng, 3000, 24) + [[FIRST_WORD]] * 200  # + one-word rows
  langs = rng.integers(0, 2, len(words))
  batch = sentence_batch(words, 24, langs)
  out = jax.tree_util.tree_map(np.asarray, noisy(jax.random.PRNGKey(1), batch, 0.1, 0.0))
  check_layout(out, langs)
  kept = dropped = 0
  for r, w in enumerate(words):
    n = int(out['segment_ids'][r].sum())
    got = list(out['tokens'][r, 1:n - 1])
    assert got, 'a row lost all its words'
    assert got == [x for x in w if x in got], 'dropout reordered words (no shuffle asked)'
    if len(w) > 1:
      kept, dropped = kept + len(got), dropped + len(w) - len(got)
  rate = dropped / (kept + dropped)
  assert kept + dropped > 30000 and abs(rate - 0.1) < 0.006, rate
  # One-word rows keep their word; rate 0 keeps every row as it is.
  np.testing.assert_array_equal(out['tokens'][-200:, :3], [[BOS, FIRST_WORD, EOS]] * 200)
  same = noisy(jax.random.PRNGKey(1), batch, 0.0, 0.0)
  for k, v in same.items():
    np.testing.assert_array_equal(v, batch[k], err_msg=k)


@pytest.mark.parametrize('k', [1, 3])  # 3: the paper's k
def test_local_shuffle_moves_no_word_more_than_k(k):
  rng = np.random.default_rng(2)
  words = distinct_words(rng, 2000, 32)
  langs = rng.integers(0, 2, len(words))
  batch = sentence_batch(words, 32, langs)
  out = jax.tree_util.tree_map(np.asarray, noisy(jax.random.PRNGKey(3), batch, 0.0, float(k)))
  check_layout(out, langs)
  moved, largest = 0, 0
  for r, w in enumerate(words):
    got = out['tokens'][r, 1:len(w) + 1]
    assert sorted(got) == w, 'the shuffle lost or added a word'
    displacement = np.abs((got - FIRST_WORD) - np.arange(len(w)))
    largest = max(largest, int(displacement.max()))
    moved += int((displacement > 0).sum())
  assert largest == k and moved > 1000  # i + U(0, k + 1): up to k places, and it does move
  # The same key gives the same noise, another key other noise.
  again = noisy(jax.random.PRNGKey(3), batch, 0.0, float(k))['tokens']
  other = noisy(jax.random.PRNGKey(4), batch, 0.0, float(k))['tokens']
  np.testing.assert_array_equal(again, out['tokens'])
  assert not np.array_equal(other, out['tokens'])


def test_shuffle_then_dropout_keeps_layout_and_leaves_padding_rows():
  rng = np.random.default_rng(5)
  words = distinct_words(rng, 500, 20)
  batch = sentence_batch(words + [[]], 20, [1] * 501)  # + a bos eos row
  batch = {k: np.concatenate([v, np.zeros_like(v[:1])]) for k, v in batch.items()}  # + padding
  out = jax.tree_util.tree_map(np.asarray, noisy(jax.random.PRNGKey(0), batch, 0.1, 3.0))
  check_layout({k: v[:-1] for k, v in out.items()}, [1] * 501)
  np.testing.assert_array_equal(out['tokens'][-2, :3], [BOS, EOS, PAD])
  for k, v in out.items():
    assert not v[-1].any(), k
  for r, w in enumerate(words):
    got = out['tokens'][r, 1:int(out['segment_ids'][r].sum()) - 1]
    assert set(got) <= set(w) and len(set(got)) == len(got)


def test_prepare_dae_pair_and_bt_targets():
  objective = umt.make(lang_ids=(0, 1), bos_id=BOS, eos_id=EOS, pad_id=PAD)
  assert objective.heads == ('dae', 'bt')
  words = [[7, 8, 9, 10, 11, 12], [13]]
  batch = jax.tree_util.tree_map(jnp.asarray, sentence_batch(words, 10, [0, 1]))
  inputs, targets = jax.jit(objective.prepare)(jax.random.PRNGKey(0), batch, {})
  inputs, targets = jax.tree_util.tree_map(np.asarray, (inputs, targets))
  noise = jax.tree_util.tree_map(np.asarray, umt.noise(jax.random.PRNGKey(0), batch))
  # The encoder reads the noisy sentence; the decoder rebuilds the original, own language.
  for k in ('tokens', 'positions', 'langs'):
    np.testing.assert_array_equal(inputs[f'src_{k}'], noise[k], err_msg=k)
  np.testing.assert_array_equal(inputs['tgt_tokens'],
                                [[BOS, 7, 8, 9, 10, 11, 12, 0, 0], [BOS, 13, 0, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(inputs['tgt_langs'][:, 0], [0, 1])
  np.testing.assert_array_equal(inputs['src_langs'][:, 0], [0, 1])
  for head in ('dae', 'bt'):
    np.testing.assert_array_equal(targets[head]['ids'], [[7, 8, 9, 10, 11, 12, EOS, 0, 0],
                                                         [13, EOS, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(targets[head]['weights'].sum(1), [7, 2])
  np.testing.assert_array_equal(targets['bt']['to_langs'], [1, 0])
  np.testing.assert_array_equal(targets['bt']['tokens'], batch['tokens'])


# ----- With a model: configs/mass.py:tiny sizes -----

VOCAB, LENGTH, ROWS = 1000, 64, 6


@pytest.fixture(scope='module')
def tiny():
  config = run.resolve(mass_config.get_config('tiny'))
  assert config.mt.src_len == config.mt.tgt_len == LENGTH == config.model.max_len
  model = models.build(config.model, VOCAB)
  rng = np.random.default_rng(7)
  words = [list(rng.integers(FIRST_WORD, VOCAB, rng.integers(1, LENGTH - 1)))
           for _ in range(ROWS)]
  langs = np.arange(ROWS) % 2
  batch = jax.tree_util.tree_map(jnp.asarray, sentence_batch(words, LENGTH, langs))
  objective = umt.make(lang_ids=(0, 1), bos_id=BOS, eos_id=EOS, pad_id=PAD,
                       banned_ids=(PAD, BOS, MASK))
  inputs, targets = jax.jit(objective.prepare)(jax.random.PRNGKey(0), batch, {})
  params = jax.jit(lambda key: model.init(key, **inputs)['params'])(jax.random.PRNGKey(1))
  # Larger than init's std 0.02, so that the greedy outputs depend on the source.
  draw = np.random.default_rng(2)
  params = jax.tree_util.tree_map(
      lambda x: x + 0.2 * draw.standard_normal(x.shape).astype(np.float32), params)
  return config, model, objective, params, batch, inputs, targets, langs


def model_fn(model, params, deterministic=True):
  return base.ModelFn(model, {'params': params}, {'dropout': jax.random.PRNGKey(9)},
                      deterministic)


@pytest.mark.model
def test_back_translation_is_greedy_search_into_the_other_language(tiny):
  _, model, _, params, batch, _, targets, langs = tiny
  gen = jax.jit(lambda p, t: umt.generate(model_fn(model, p), t, bos_id=BOS, eos_id=EOS,
                                          pad_id=PAD, banned_ids=()))
  out = jax.tree_util.tree_map(np.asarray, gen(params, targets['bt']))
  assert not np.array_equal(out['tokens'], targets['bt']['tokens'])
  check_layout(out, 1 - langs)  # the other language's id on every real token
  # The tokens are plm.decode.seq2seq's greedy translation of each row into the other language.
  translator = seq2seq.make_translator(
      model, batch_size=ROWS, src_len=LENGTH, max_len=LENGTH - 1, bos_id=BOS, eos_id=EOS,
      pad_id=PAD, beam_size=1, length_penalty=1.0, no_repeat_ngram=0)
  best = np.asarray(translator(params, batch['tokens'], jnp.asarray(langs), jnp.asarray(1 - langs)))
  lengths = out['segment_ids'].sum(1)
  for r in range(ROWS):
    want = list(best[r])
    want = want[:want.index(EOS)] if EOS in want else want[:LENGTH - 2]  # no eos: cut, eos
    assert list(out['tokens'][r, 1:lengths[r] - 1]) == want, r
  assert len({tuple(t) for t in out['tokens']}) > 1, 'every source gave one translation'


@pytest.mark.model
def test_no_gradient_flows_through_the_generation(tiny):
  _, model, objective, params, _, inputs, targets, langs = tiny
  # The generation the loss makes (pad, bos and mask banned), computed apart: a constant.
  gen = jax.tree_util.tree_map(np.asarray, jax.jit(lambda p: umt.generate(
      model_fn(model, p), targets['bt'], bos_id=BOS, eos_id=EOS, pad_id=PAD,
      banned_ids=(PAD, BOS, MASK)))(params))
  check_layout(gen, 1 - langs)
  for r in range(ROWS):
    n = gen['segment_ids'][r].sum()
    assert not np.isin(gen['tokens'][r, 1:n - 1], (PAD, BOS, EOS, MASK)).any()
  # d bt/loss / d params through the whole loss (the search runs inside it) equals the
  # gradient with the search's output given as a constant, and is not zero.
  full = jax.jit(jax.grad(lambda p: objective.loss(model_fn(model, p), inputs, targets,
                                                   {})['bt/loss']))(params)
  const = jax.jit(jax.grad(lambda p: umt.head_sums(model_fn(model, p), inputs, targets,
                                                   gen)['bt/loss']))(params)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(full),
                          jax.tree_util.tree_leaves(const)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=jax.tree_util.keystr(path))
  assert sum(float(np.sum(np.square(x))) for x in jax.tree_util.tree_leaves(full)) > 0


@pytest.mark.model
def test_train_step_reports_both_heads_and_weights_them(tiny):
  config, model, objective, _, _, _, _, _ = tiny
  config = config.copy_and_resolve_references()
  config.train.batch_size, config.train.eval_batch_size = 4, 4
  config.objective.loss_weights = {'bt': 0.5}
  rng = np.random.default_rng(11)
  streams = {}
  for lang in (0, 1):
    words = [list(rng.integers(FIRST_WORD, VOCAB, rng.integers(1, 20))) for _ in range(8)]
    streams[('en', 'es')[lang]] = rows_lib.Rows(
        sentence_batch(words, LENGTH, [lang] * 8), info=dict(sentences=8, too_long=0, empty=0))
  rows = mixing.MixedDataset(streams, {'en': 0.5, 'es': 0.5}, ('en', 'es'))
  pairs = sentences.pair_rows([([7, 8], [9, 10, 11]), ([12], [13, 14])], src_lang=0, tgt_lang=1,
                              src_len=LENGTH, tgt_len=LENGTH, bos_id=BOS, eos_id=EOS, pad_id=PAD)
  task = train.Task('mt', model, config.model, objective, rows, lambda split: {'en-es': pairs},
                    meta=dict(vocab='test', vocab_size=VOCAB))
  s = train.setup(config, task)
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(0), s.extras)
    state, metrics = s.train_step(state, s.extras, s.put(rows.batch(0, 4, seed=0)))
    metrics = jax.device_get(metrics)
    for head in ('dae', 'bt'):
      assert np.isfinite(metrics[f'{head}/loss']) and metrics[f'{head}/loss'] > 0, head
      assert 0 <= metrics[f'{head}/accuracy'] <= 1, head
    assert metrics['loss'] == pytest.approx(metrics['dae/loss'] + 0.5 * metrics['bt/loss'],
                                            rel=1e-5)
    assert int(state['step']) == 1 and metrics['skipped'] == 0
    # Held-out pairs are scored as supervised translation: one 'mt' row, no dae/bt rows.
    table = train.evaluate(s, state['params'], task.heldout('test'), jax.random.PRNGKey(0))
  assert set(table['en-es']) == {'mt'} and table['en-es']['mt']['predictions'] == 7
