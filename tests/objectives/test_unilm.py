"""UNILM objective: masks cell by cell, objective mix, span masking, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks, objectives
from plm.objectives import unilm

PAD, BOS, EOS, MASK, VOCAB = 0, 2, 3, 4, 50
SPECIAL = (PAD, BOS, EOS, MASK)
MIX = (0.1, 0.2, 0.3, 0.4)
ROWS, LENGTH, SLOTS = 2000, 64, 16  # 15% of <= 63 tokens is <= 10 (+2 overshoot) < 16


def packed_batch(rng, rows, length):
  """1-3 bos-led segments per row with eos-ended sentences, then padding."""
  tokens = rng.integers(5, VOCAB, size=(rows, length)).astype(np.int32)
  seg = np.zeros((rows, length), np.int32)
  positions = np.zeros((rows, length), np.int32)
  for r in range(rows):
    end = rng.integers(length // 2, length + 1)
    cuts = np.sort(rng.choice(np.arange(2, end - 1), rng.integers(0, 3), replace=False))
    bounds = [0, *cuts, end]
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
      seg[r, a:b] = k + 1
      positions[r, a:b] = np.arange(b - a)
      tokens[r, a] = BOS
    tokens[r, rng.random(length) < 0.08] = EOS
    tokens[r, bounds[:-1]] = BOS
    tokens[r, end:] = PAD
  return dict(tokens=tokens, segment_ids=seg, positions=positions)


def run(batch, seed=0, **kw):
  kw = dict(dict(num_predictions=SLOTS, mix=MIX), **kw)
  fn = unilm.make(mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, **kw)
  out = jax.jit(lambda r, b: fn(r, b, with_plan=True))(
      jax.random.PRNGKey(seed), jax.tree_util.tree_map(jnp.asarray, batch))
  return jax.tree_util.tree_map(np.asarray, out)


@pytest.fixture(scope='module')
def big():
  """One compiled call on a big mixed batch, shared by the statistics tests."""
  batch = packed_batch(np.random.default_rng(0), ROWS, LENGTH)
  return batch, run(batch)


def reference_allowed(objective, seg, types, i, j):
  """Whether query i may attend key j, from the UNILM definitions plus packing."""
  if seg[i] == 0 or seg[j] != seg[i]:
    return False
  if objective == masks.BIDIRECTIONAL:
    return True
  if objective == masks.LEFT_TO_RIGHT:
    return j <= i
  if objective == masks.RIGHT_TO_LEFT:
    return j >= i
  assert objective == masks.SEQ2SEQ
  return types[j] == 0 or (types[i] == 1 and j <= i)


def test_mask_matches_brute_force_reference_for_all_four_objectives(big):
  batch, (inputs, _, _, plan) = big
  rows = 24
  ids = plan.objective_ids[:rows]
  assert set(ids) == {0, 1, 2, 3}, ids
  seg, types = batch['segment_ids'], inputs['token_types']
  expected = np.zeros((rows, 1, LENGTH, LENGTH), bool)
  for b in range(rows):
    for i in range(LENGTH):
      for j in range(LENGTH):
        expected[b, 0, i, j] = reference_allowed(ids[b], seg[b], types[b], i, j)
  np.testing.assert_array_equal(inputs['mask'][:rows], expected)


def test_token_types_split_every_segment_of_seq2seq_rows_only(big):
  batch, (inputs, _, _, plan) = big
  seg, types = batch['segment_ids'], inputs['token_types']
  cuts = []
  for b in range(ROWS):
    if plan.objective_ids[b] != masks.SEQ2SEQ:
      assert not types[b].any(), b
      continue
    assert not types[b][seg[b] == 0].any()
    for s in set(seg[b]) - {0}:
      t = types[b][seg[b] == s]
      cut = int(np.argmax(t)) if t.any() else len(t)
      # Source = bos + 0.. tokens, target = the rest, at least one token.
      np.testing.assert_array_equal(t, np.arange(len(t)) >= cut)
      assert cut >= 1 and cut <= max(len(t) - 1, 1), (b, s, t)
      if len(t) > 2:
        cuts.append((cut / (len(t) - 1), len(t) / (2 * (len(t) - 1))))
  # Cut offsets are uniform on [1, n - 1]: cut / (n - 1) has mean n / (2 (n - 1)).
  scaled, expected = np.array(cuts).T
  assert len(scaled) > 500
  assert abs(scaled.mean() - expected.mean()) < 0.03


def test_objective_frequencies_match_mix(big):
  _, (_, _, _, plan) = big
  freq = np.bincount(plan.objective_ids, minlength=4) / ROWS
  # Binomial standard error at n = 2000 is <= 0.011.
  np.testing.assert_allclose(freq, MIX, atol=0.035)


def test_zero_shares_are_never_drawn_and_ngram_prob_zero_masks_single_tokens():
  batch = packed_batch(np.random.default_rng(1), 64, 16)
  plan = run(batch, mix=dict(bidirectional=0.5, seq2seq=0.5), ngram_prob=0.0,
             num_predictions=4)[3]
  assert set(plan.objective_ids) == {masks.BIDIRECTIONAL, masks.SEQ2SEQ}
  assert set(np.unique(plan.span_lengths)) == {0, 1}


def test_masked_positions_are_eligible_and_predicted_exactly(big):
  batch, (inputs, targets, weights, plan) = big
  tokens = batch['tokens']
  eligible = ~np.isin(tokens, SPECIAL)
  assert not (plan.masked & ~eligible).any(), 'a special or padding token was masked'
  for r in range(200):
    picked = inputs['predict_positions'][r][weights[r] > 0]
    np.testing.assert_array_equal(np.sort(picked), np.flatnonzero(plan.masked[r]))
    np.testing.assert_array_equal(targets[r][weights[r] > 0], tokens[r, picked])
    untouched = ~plan.masked[r]
    np.testing.assert_array_equal(inputs['tokens'][r, untouched], tokens[r, untouched])
    # Stochastic rounding of 15% less the mean overshoot, plus at most 2 tokens
    # from a last n-gram.
    share = 0.15 * eligible[r].sum() - 2 * 0.2 / 1.3
    assert np.floor(share) <= len(picked) <= np.ceil(share) + 2, r
  total = weights.sum() / eligible.sum()
  assert abs(total - 0.15) < 0.002, total
  # 80/10/10 from mlm.corrupt, on the masked positions.
  new = np.take_along_axis(inputs['tokens'], inputs['predict_positions'], 1)[weights > 0]
  assert abs(np.mean(new == MASK) - 0.8) < 0.02


def test_spans_are_contiguous_units_with_ngram_share(big):
  batch, (_, _, _, plan) = big
  seg = batch['segment_ids']
  lengths = plan.span_lengths
  for r in range(ROWS):
    covered = np.zeros(LENGTH, int)
    for start, n in zip(plan.span_starts[r], lengths[r]):
      covered[start:start + n] += 1
      assert len(set(seg[r, start:start + n])) <= 1, 'a span crosses segments'
    assert covered.max() <= 1, 'spans overlap'
    np.testing.assert_array_equal(covered > 0, plan.masked[r])
  units = lengths[lengths > 0]
  assert len(units) > 8000
  ngram = np.mean(units > 1)
  # Standard error ~0.004 at ~10000 units.
  assert abs(ngram - 0.2) < 0.02, ngram
  assert abs(np.mean(units[units > 1] == 3) - 0.5) < 0.05


@pytest.mark.parametrize('mix, match', [
    ((0.5, 0.2, 0.2, 0.2), r'objective.unilm_mix=.*sums to 1.1'),
    ((0.5, 0.5, -0.2, 0.2), r'objective.unilm_mix=.*non-negative.*sums to 1\)'),
    ((0.5, 0.5), r'objective.unilm_mix=.*4 probabilities'),
    (dict(bidirectional=0.5, causal=0.5), r"objective.unilm_mix names unknown .*'causal'"),
])
def test_bad_mix_is_one_clear_error(mix, match):
  with pytest.raises(ValueError, match=match):
    unilm.make(mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, num_predictions=4, mix=mix)


def test_build_by_name_and_config_errors():
  """objectives.build('unilm') is unilm.make with the config's fields: the same inputs and
  targets for the same key, one head 'unilm'; a bad field is an error at build time."""
  from plm import configlib  # pylint: disable=g-import-not-at-top
  tok = type('Tok', (), dict(mask_id=MASK, vocab_size=VOCAB, pad_id=PAD, bos_id=BOS,
                             eos_id=EOS))
  cfg = configlib.base()
  cfg.objective.name, cfg.objective.num_predictions = 'unilm', SLOTS
  cfg.objective.unilm_mix, cfg.objective.ngram_prob = MIX, 0.2
  counts = np.ones(VOCAB, np.int64)
  objective = objectives.build(cfg, tok, counts)
  assert objective.heads == ('unilm',)
  batch = jax.tree_util.tree_map(jnp.asarray, packed_batch(np.random.default_rng(2), 32,
                                                           LENGTH))
  key = jax.random.PRNGKey(9)
  inputs, targets = jax.jit(lambda k, b: objective.prepare(k, b, {}))(key, batch)
  want_inputs, want_ids, want_weights = run(batch, seed=9)[:3]
  assert sorted(inputs) == sorted(want_inputs)
  for k in inputs:
    np.testing.assert_array_equal(inputs[k], want_inputs[k], err_msg=k)
  np.testing.assert_array_equal(targets['unilm']['ids'], want_ids)
  np.testing.assert_array_equal(targets['unilm']['weights'], want_weights)
  assert want_weights.sum() > 50 and len(set(run(batch, seed=9)[3].objective_ids)) > 1
  cfg.objective.ngram_prob = 1.5
  with pytest.raises(ValueError, match=r'objective.ngram_prob=1.5'):
    objectives.build(cfg, tok, counts)
  cfg.objective.name = 'unlim'
  with pytest.raises(ValueError, match=r"objective.name='unlim' is unknown.*'unilm'"):
    objectives.build(cfg, tok, counts)
