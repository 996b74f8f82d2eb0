"""UNILM seq2seq decoding (plm/decode/unilm.py) against the training layout."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks
from plm.decode import search, unilm
from plm.data import packing
from plm.objectives import seq2seq_finetune
from plm.models.encoder import Encoder, EncoderLM

pytestmark = pytest.mark.model

V, L, B = 37, 20, 3
PAD, EOS, BOS, MASK = 0, 1, 2, 3
SOURCES = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15, 16, 17, 18]]
WIDTH = 9  # longest source + bos + eos


def _model():
  return EncoderLM(Encoder(vocab_size=V, layers=2, hidden=32, heads=4, ff=64, dropout=0.0,
                           attention_dropout=0.0, max_len=L, num_segments=2))


@pytest.fixture(scope='module')
def params():
  """Large random params, so the next token depends on the whole context."""
  dummy = jnp.zeros((1, L), jnp.int32)
  shapes = jax.eval_shape(lambda: nn.unbox(_model().init(jax.random.PRNGKey(0), dummy, dummy,
                                                         None, token_types=dummy))['params'])
  rng = np.random.RandomState(0)
  def draw(path, x):
    noise = 0.3 * rng.standard_normal(x.shape).astype(np.float32)
    return noise + 1 if jax.tree_util.keystr(path).endswith("'scale']") else noise
  return jax.tree_util.tree_map_with_path(draw, shapes)


def _prompt():
  return unilm.left_pad(SOURCES, WIDTH, bos_id=BOS, eos_id=EOS, pad_id=PAD)


def _teacher_forced(params, cached, feed):
  """Logits [B, T, V] of the step function fed `feed` [B, T] after the prefill."""
  make = unilm.cached_step_fn if cached else unilm.uncached_step_fn
  step, state = make(_model(), params, mask_id=MASK, batch_size=B, max_len=L)
  prompt, valid = _prompt()
  state, first, pos = unilm.prefill(_model(), params, state, jnp.asarray(prompt), valid)
  tokens = jnp.concatenate([first[:, None], feed[:, :-1]], 1)
  out = []
  for i in range(feed.shape[1]):
    logits, state = step(state, tokens[:, i], pos + i)
    out.append(logits)
  return jnp.stack(out, 1)


def _reference(params, feed, restart=False):
  """The same logits from the training layout: `[bos] src [eos] y1..yi [MASK]`, right-padded,
  seq2seq_mask, one row per (source, step) in one forward pass (no decoding code involved).
  restart: the target's positions count from 1 again (finetune.target_positions='restart')."""
  feed = np.asarray(feed)
  steps = feed.shape[1]
  tokens = np.full((B * steps, L), PAD, np.int32)
  types = np.zeros((B * steps, L), np.int32)
  last = np.zeros((B * steps, 1), np.int32)
  positions = np.zeros((B * steps, L), np.int32)
  for b, src in enumerate(SOURCES):
    for i in range(steps):
      row = [BOS] + src + [EOS] + list(feed[b, :i]) + [MASK]
      tokens[b * steps + i, :len(row)] = row
      types[b * steps + i, len(src) + 2:len(row)] = 1
      last[b * steps + i] = len(row) - 1
      positions[b * steps + i, :len(row)] = np.arange(len(row))
      if restart:
        positions[b * steps + i, len(src) + 2:len(row)] = np.arange(1, i + 2)
  valid = np.arange(L)[None] <= last
  logits = jax.jit(_model().apply)({'params': params}, tokens, positions,
                                   masks.seq2seq_mask(types, valid), token_types=types,
                                   predict_positions=last)
  return np.asarray(logits[:, 0]).reshape(B, steps, V)


@pytest.mark.parametrize('cached', [False, True])
def test_step_matches_training_layout(params, cached):
  feed = jnp.asarray(np.random.RandomState(1).randint(4, V, (B, 5)), jnp.int32)
  got = jax.jit(_teacher_forced, static_argnums=1)(params, cached, feed)
  np.testing.assert_allclose(np.asarray(got), _reference(params, feed), atol=2e-4, rtol=1e-4)


def _search(params, cached, beam, steps=L - WIDTH, greedy=False, ngram=0):
  make = unilm.cached_step_fn if cached else unilm.uncached_step_fn
  step, state = make(_model(), params, mask_id=MASK, batch_size=B, max_len=L)
  prompt, valid = _prompt()
  state, first, pos = unilm.prefill(_model(), params, state, jnp.asarray(prompt), valid)
  if greedy:
    return search.greedy(step, state, first, max_len=steps, eos_id=EOS, start_position=pos,
                         no_repeat_ngram=ngram)
  return search.beam_search(step, state, first, beam_size=beam, max_len=steps, eos_id=EOS,
                            length_penalty=0.6, no_repeat_ngram=ngram, start_position=pos)[0]


def test_cached_beam_search_equals_uncached(params):
  run = jax.jit(lambda p, cached: _search(p, cached, 5, ngram=2), static_argnums=1)
  cached, uncached = np.asarray(run(params, True)), np.asarray(run(params, False))
  np.testing.assert_array_equal(cached, uncached)
  # The comparison covers many steps, not an immediate eos.
  assert max(len(unilm.strip(r, EOS)) for r in cached.reshape(-1, cached.shape[-1])) >= 5


def test_beam_one_is_greedy(params):
  beam = jax.jit(_search, static_argnums=(1, 2))(params, True, 1)
  greedy = jax.jit(lambda p: _search(p, True, 1, greedy=True))(params)
  np.testing.assert_array_equal(np.asarray(beam[:, 0]), np.asarray(greedy))


def test_make_decoder_blocks_repeated_ngrams(params):
  run = unilm.make_decoder(_model(), mask_id=MASK, eos_id=EOS, pad_id=PAD, batch_size=B,
                           prompt_width=WIDTH, max_len=L, beam_size=2, length_penalty=1.0,
                           no_repeat_ngram=2)
  for row in np.asarray(run(params, *_prompt())):
    out = unilm.strip(row, EOS)
    bigrams = list(zip(out, out[1:]))
    assert len(bigrams) == len(set(bigrams)), out


def test_source_wider_than_prompt_is_an_error():
  with pytest.raises(ValueError, match='prompt width'):
    unilm.left_pad([[5] * 10], 8, bos_id=BOS, eos_id=EOS, pad_id=PAD)
  with pytest.raises(ValueError, match='raise finetune.seq_len'):
    unilm.make_decoder(_model(), mask_id=MASK, eos_id=EOS, pad_id=PAD, batch_size=B,
                       prompt_width=L, max_len=L, beam_size=2, length_penalty=1.0,
                       no_repeat_ngram=0)


@pytest.mark.parametrize('restart', [False, True])
def test_greedy_decoder_picks_the_training_layout_argmax(params, restart):
  """make_decoder end to end (left-padded prompts, prefill, greedy): each emitted token is the
  argmax of a full training-layout forward pass over the source and the tokens emitted before
  it, up to and including the eos. (The cached decoder, as the generate job runs it; the
  uncached one equals it: test_cached_beam_search_equals_uncached.)"""
  run = unilm.make_decoder(_model(), mask_id=MASK, eos_id=EOS, pad_id=PAD, batch_size=B,
                           prompt_width=WIDTH, max_len=L, beam_size=1, length_penalty=1.0,
                           no_repeat_ngram=0, cached=True, restart_positions=restart)
  out = np.asarray(run(params, *_prompt()))
  reference = _reference(params, out, restart).argmax(-1)
  checked = 0
  for b, row in enumerate(out):
    n = min(len(unilm.strip(row, EOS)) + 1, len(row))  # through the eos
    np.testing.assert_array_equal(row[:n], reference[b, :n], err_msg=f'row {b}')
    checked += n
  assert checked >= 10, out  # several steps, not an immediate eos


@pytest.mark.parametrize('restart', [False, True])
def test_pseudo_masked_training_predicts_as_decoding_does(params, restart):
  """finetune.target_masking='pseudo': the [MASK] twin of target token i gives, in one
  training forward pass, the logits decoding gives at step i (source and y1..y(i-1) real)."""
  feed = np.random.RandomState(2).randint(4, V, (B, 4)).astype(np.int32)
  rows = [packing.pack_pair(src, feed[b], max_len=L, bos_id=BOS, eos_id=EOS,
                            restart_target_positions=restart, pseudo_target=True)
          for b, src in enumerate(SOURCES)]
  batch = {k: jnp.asarray(np.stack([r[k] for r in rows])) for k in rows[0]}
  fn = seq2seq_finetune.make_pseudo(mask_id=MASK, vocab_size=V, num_predictions=(L - 2) // 2)
  inputs, targets, weights = fn(None, batch)
  # Slots 0..4 are the target's 4 tokens and its eos, then padding slots.
  np.testing.assert_array_equal(np.asarray(targets)[:, :5], np.c_[feed, np.full(B, EOS)])
  np.testing.assert_array_equal(np.asarray(weights).sum(1), [5] * B)
  logits = jax.jit(_model().apply)({'params': params}, **inputs)
  np.testing.assert_allclose(np.asarray(logits)[:, :4], _reference(params, feed, restart),
                             atol=2e-4, rtol=1e-4)
