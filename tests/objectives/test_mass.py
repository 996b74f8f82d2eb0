"""MASS and translation objectives: every array checked cell by cell on hand-made rows."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import configlib
from plm import objectives
from plm.data import sentences
from plm.objectives import mass, translation

PAD, BOS, EOS, MASK, VOCAB = 0, 2, 3, 4, 50
SPECIAL = (PAD, BOS, EOS, MASK)
B, E, M = BOS, EOS, MASK


def sentence_batch(words_list, length, lang=1):
  """Sentence rows as plm.data.sentences lays them out (an empty sentence too)."""
  out = {k: np.zeros((len(words_list), length), np.int32) for k in sentences.KEYS}
  for r, words in enumerate(words_list):
    n = len(words) + 2
    out['tokens'][r, :n] = [BOS, *words, EOS]
    out['segment_ids'][r, :n] = 1
    out['positions'][r, :n] = np.arange(n)
    out['langs'][r, :n] = lang
  return out


def run(batch, seed=0, **kw):
  kw = dict(dict(span=0.5, num_predictions=4), **kw)
  fn = mass.make(mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, **kw)
  out = jax.jit(fn)(jax.random.PRNGKey(seed), jax.tree_util.tree_map(jnp.asarray, batch))
  return jax.tree_util.tree_map(np.asarray, out)


SENTENCE = [7, 8, 9, 6, 5]  # n = 5 -> m = round-half-up(2.5) = 3, starts 1, 2 or 3
# start -> (tgt_tokens, tgt_positions, ids, src_tokens with mask_prob 1)
EXPECTED = {
    1: ([B, 7, 8, 0], [1, 2, 3, 0], [7, 8, 9, 0], [B, M, M, M, 6, 5, E, 0]),
    2: ([7, 8, 9, 0], [2, 3, 4, 0], [8, 9, 6, 0], [B, 7, M, M, M, 5, E, 0]),
    3: ([8, 9, 6, 0], [3, 4, 5, 0], [9, 6, 5, 0], [B, 7, 8, M, M, M, E, 0]),
}
TGT_MASK = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
CROSS_MASK = [[1] * 7 + [0]] * 3 + [[0] * 8]
SRC_MASK = [[1] * 7 + [0]] * 7 + [[0] * 8]


def test_mass_hand_made_sentence_cell_by_cell():
  batch = sentence_batch([SENTENCE] * 600, length=8)
  inputs, ids, weights = run(batch, seed=3, mask_prob=1.0, random_prob=0.0)
  starts = inputs['tgt_positions'][:, 0]
  assert set(starts) <= set(EXPECTED)
  expect = {k: np.array([EXPECTED[s][i] for s in starts]) for i, k in enumerate(
      ('tgt_tokens', 'tgt_positions', 'ids', 'src_tokens'))}
  for k in ('tgt_tokens', 'tgt_positions', 'src_tokens'):
    np.testing.assert_array_equal(inputs[k], expect[k], err_msg=k)
  np.testing.assert_array_equal(ids, expect['ids'])
  every_row = {'weights': (weights, [1, 1, 1, 0]),
               'tgt_mask': (inputs['tgt_mask'][:, 0], TGT_MASK),
               'cross_mask': (inputs['cross_mask'][:, 0], CROSS_MASK),
               'src_mask': (inputs['src_mask'][:, 0], SRC_MASK),
               'src_positions': (inputs['src_positions'], [0, 1, 2, 3, 4, 5, 6, 0]),
               'src_langs': (inputs['src_langs'], [1] * 7 + [0]),
               'tgt_langs': (inputs['tgt_langs'], [1, 1, 1, 0])}
  for k, (got, want) in every_row.items():
    np.testing.assert_array_equal(got, np.broadcast_to(want, got.shape), err_msg=k)
  # The start is uniform over the 3 that fit (binomial sd ~ 11.5 of 200).
  counts = np.bincount(starts, minlength=4)
  assert counts[0] == 0 and all(abs(c - 200) < 50 for c in counts[1:]), counts
  # Rows differ; the same key gives the same rows, another key other ones.
  again = run(batch, seed=3, mask_prob=1.0, random_prob=0.0)[0]['tgt_positions']
  other = run(batch, seed=4, mask_prob=1.0, random_prob=0.0)[0]['tgt_positions']
  np.testing.assert_array_equal(again, inputs['tgt_positions'])
  assert not np.array_equal(other, inputs['tgt_positions'])


@pytest.mark.parametrize('n,kw,m', [
    (5, dict(span_tokens=1), 1), (1, dict(span_tokens=1), 1), (3, dict(span_tokens=5), 3),
    (5, dict(span=0.5), 3), (4, dict(span=0.5), 2), (1, dict(span=0.5), 1),
    (6, dict(span=1.0), 6), (0, dict(span=0.5), 0)])
def test_span_length_rule(n, kw, m):
  assert mass.span_length(n, kw.get('span', 0.5), kw.get('span_tokens', 0)) == m
  assert int(mass.span_length(jnp.asarray([n]), kw.get('span', 0.5),
                              kw.get('span_tokens', 0))[0]) == m


def test_one_token_span_through_the_objective():
  inputs, ids, weights = run(sentence_batch([SENTENCE] * 200, length=8), span_tokens=1,
                             mask_prob=1.0, random_prob=0.0)
  np.testing.assert_array_equal(weights, np.tile([1, 0, 0, 0], (200, 1)))
  for r in range(200):
    s = int(inputs['tgt_positions'][r, 0])
    row = [B, *SENTENCE, E, 0]
    np.testing.assert_array_equal(inputs['tgt_tokens'][r], [row[s - 1], 0, 0, 0])
    np.testing.assert_array_equal(ids[r], [row[s], 0, 0, 0])
    np.testing.assert_array_equal(inputs['src_tokens'][r], row[:s] + [M] + row[s + 1:])
  assert set(inputs['tgt_positions'][:, 0]) == {1, 2, 3, 4, 5}


def test_whole_sentence_span_is_gpt_like():
  inputs, ids, weights = run(sentence_batch([SENTENCE], length=8), span=1.0, num_predictions=6,
                             mask_prob=1.0, random_prob=0.0)
  np.testing.assert_array_equal(inputs['src_tokens'][0], [B, M, M, M, M, M, E, 0])
  np.testing.assert_array_equal(inputs['tgt_tokens'][0], [B, 7, 8, 9, 6, 0])
  np.testing.assert_array_equal(inputs['tgt_positions'][0], [1, 2, 3, 4, 5, 0])
  np.testing.assert_array_equal(ids[0], [7, 8, 9, 6, 5, 0])
  np.testing.assert_array_equal(weights[0], [1, 1, 1, 1, 1, 0])
  np.testing.assert_array_equal(inputs['tgt_mask'][0, 0], np.tril(np.ones((6, 6)))
                                * ([1] * 5 + [0]) * np.array([[1]] * 5 + [[0]]))
  # Default 80/10/10: bos, eos and pad stay; every word is in the span.
  inputs = run(sentence_batch([SENTENCE] * 50, length=8), span=1.0, num_predictions=6)[0]
  np.testing.assert_array_equal(inputs['src_tokens'][:, [0, 6, 7]], [[B, E, 0]] * 50)
  np.testing.assert_array_equal(inputs['tgt_positions'], [[1, 2, 3, 4, 5, 0]] * 50)


def random_sentences(rng, rows, length):
  return [list(rng.integers(5, VOCAB, size=rng.integers(1, length - 1))) for _ in range(rows)]


def test_80_10_10_on_the_span():
  words = random_sentences(np.random.default_rng(0), 2000, 16)
  batch = sentence_batch(words, length=16)
  inputs, ids, weights = run(batch, num_predictions=7)
  rows, slots = np.nonzero(weights)
  at = inputs['tgt_positions'][rows, slots]
  new, old = inputs['src_tokens'][rows, at], batch['tokens'][rows, at]
  np.testing.assert_array_equal(ids[rows, slots], old)
  masked, kept = np.mean(new == MASK), np.mean(new == old)
  assert len(old) > 5000
  # A random token equals the original 1/45 of the time (counted as kept).
  assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1 - 0.1 / 45) < 0.015
  assert abs(1 - masked - kept - 0.1 * 44 / 45) < 0.015
  assert not np.isin(new, SPECIAL[:3]).any(), 'a random replacement was special'


def test_span_never_covers_bos_eos_or_pad_and_padding_rows_weigh_0():
  words = random_sentences(np.random.default_rng(1), 500, 12)
  batch = sentence_batch(words + [[]], length=12)  # + a row of bos eos only
  batch = {k: np.concatenate([v, np.zeros_like(v[:2])]) for k, v in batch.items()}  # + padding
  inputs, ids, weights = run(batch, num_predictions=5)
  n = np.array([len(w) for w in words] + [0, 0, 0])
  np.testing.assert_array_equal(weights.sum(1), [max(1, (2 * x + 2) // 4) if x else 0 for x in n])
  for r in range(len(n)):
    at = inputs['tgt_positions'][r][weights[r] > 0]
    assert ((1 <= at) & (at <= n[r])).all()
    outside = np.setdiff1d(np.arange(12), at)
    np.testing.assert_array_equal(inputs['src_tokens'][r, outside], batch['tokens'][r, outside])
  assert not np.isin(ids[weights > 0], SPECIAL).any()
  for r in (-3, -2, -1):  # nothing to predict, attend or read from a row without words
    assert not weights[r].any() and not inputs['tgt_mask'][r].any()
    assert not inputs['cross_mask'][r].any() and not inputs['tgt_tokens'][r].any()


def test_errors_name_the_field():
  batch = sentence_batch([SENTENCE], length=8)  # the largest span: 3 of 6 words
  with pytest.raises(ValueError, match=r'objective.num_predictions=2 is smaller than the largest '
                     r'MASS span \(3 tokens of a 8-token row\); raise objective.num_predictions'):
    run(batch, num_predictions=2)
  run(batch, num_predictions=1, span_tokens=1)  # one token fits one slot
  with pytest.raises(ValueError, match=r'objective.mass_span=0 must lie in \(0, 1\]'):
    run(batch, span=0)
  with pytest.raises(ValueError, match='objective.mass_span_tokens=-1 must be >= 0'):
    run(batch, span_tokens=-1)


def test_build_registers_mass():
  config = configlib.base()
  config.objective.name, config.objective.num_predictions = 'mass', 4
  tok = types.SimpleNamespace(pad_id=PAD, bos_id=BOS, eos_id=EOS, mask_id=MASK, vocab_size=VOCAB)
  objective = objectives.build(config, tok, np.ones(VOCAB, np.int64))
  assert objective.heads == ('mass',)
  batch = jax.tree_util.tree_map(jnp.asarray, sentence_batch([SENTENCE], length=8))
  inputs, targets = jax.jit(objective.prepare)(jax.random.PRNGKey(0), batch, {})
  want_inputs, ids, weights = run(batch)
  for k, v in want_inputs.items():
    np.testing.assert_array_equal(inputs[k], v)
  np.testing.assert_array_equal(targets['mass']['ids'], ids)
  np.testing.assert_array_equal(targets['mass']['weights'], weights)


def test_translation_shifts_exactly():
  rows = sentences.pair_rows([([7, 8], [9, 6, 5]), ([10], [11])], src_lang=0, tgt_lang=1,
                             src_len=5, tgt_len=6, bos_id=BOS, eos_id=EOS, pad_id=PAD)
  batch = jax.tree_util.tree_map(jnp.asarray, rows.arrays)
  inputs, ids, weights = jax.tree_util.tree_map(
      np.asarray, jax.jit(translation.make())(jax.random.PRNGKey(0), batch))
  np.testing.assert_array_equal(inputs['src_tokens'], [[B, 7, 8, E, 0], [B, 10, E, 0, 0]])
  np.testing.assert_array_equal(inputs['tgt_tokens'], [[B, 9, 6, 5, 0], [B, 11, 0, 0, 0]])
  np.testing.assert_array_equal(inputs['tgt_positions'], [[0, 1, 2, 3, 0], [0, 1, 0, 0, 0]])
  np.testing.assert_array_equal(ids, [[9, 6, 5, E, 0], [11, E, 0, 0, 0]])
  np.testing.assert_array_equal(weights, [[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
  np.testing.assert_array_equal(inputs['tgt_langs'], [[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
  np.testing.assert_array_equal(inputs['src_langs'], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(inputs['tgt_mask'][1, 0], [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0]]
                                + [[0] * 5] * 3)
  np.testing.assert_array_equal(inputs['cross_mask'][1, 0], [[1, 1, 1, 0, 0]] * 2 + [[0] * 5] * 3)
  np.testing.assert_array_equal(inputs['src_mask'][1, 0], [[1, 1, 1, 0, 0]] * 3 + [[0] * 5] * 2)
  objective = translation.objective()
  assert objective.heads == ('mt',)
  _, targets = objective.prepare(jax.random.PRNGKey(0), batch, {})
  np.testing.assert_array_equal(targets['mt']['ids'], ids)
