"""MLM and CLM objectives: masking statistics and targets, checked exactly."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks
from plm.objectives import clm, mlm

PAD, BOS, EOS, MASK, VOCAB = 0, 2, 3, 4, 50
SPECIAL = (PAD, BOS, EOS, MASK)


def packed_batch(rng, rows=256, length=64):
  """Rows of bos-led segments with eos and trailing padding, like plm.data.packing."""
  tokens = rng.integers(5, VOCAB, size=(rows, length)).astype(np.int32)
  seg = np.zeros((rows, length), np.int32)
  positions = np.zeros((rows, length), np.int32)
  for r in range(rows):
    end = rng.integers(length // 2, length + 1)
    cut = rng.integers(2, end - 1)
    seg[r, :cut], seg[r, cut:end] = 1, 2
    tokens[r, [0, cut]] = BOS
    tokens[r, cut - 1] = EOS
    tokens[r, end:] = PAD
    positions[r, :cut] = np.arange(cut)
    positions[r, cut:end] = np.arange(end - cut)
  return dict(tokens=tokens, segment_ids=seg, positions=positions)


def run_mlm(batch, seed=0, **kw):
  fn = mlm.make(mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, num_predictions=16, **kw)
  out = jax.jit(fn)(jax.random.PRNGKey(seed), jax.tree_util.tree_map(jnp.asarray, batch))
  return jax.tree_util.tree_map(np.asarray, out)


def test_mlm_picks_15_percent_of_eligible_tokens_never_special():
  batch = packed_batch(np.random.default_rng(0))
  inputs, targets, weights = run_mlm(batch)
  tokens = batch['tokens']
  eligible = ~np.isin(tokens, SPECIAL)
  pos = inputs['predict_positions']
  for r in range(len(tokens)):
    picked = pos[r][weights[r] > 0]
    assert len(set(picked)) == len(picked), 'a position was picked twice'
    assert eligible[r, picked].all(), 'a special or padding token was picked'
    np.testing.assert_array_equal(targets[r][weights[r] > 0], tokens[r, picked])
    # Stochastic rounding: floor or ceil of 15% of the eligible count.
    share = 0.15 * eligible[r].sum()
    assert np.floor(share) <= len(picked) <= np.ceil(share)
    unpicked = np.ones(tokens.shape[1], bool)
    unpicked[picked] = False
    np.testing.assert_array_equal(inputs['tokens'][r, unpicked], tokens[r, unpicked])
  total = weights.sum() / eligible.sum()
  assert abs(total - 0.15) < 0.005


def test_mlm_80_10_10():
  batch = packed_batch(np.random.default_rng(1), rows=1024)
  inputs, targets, weights = run_mlm(batch)
  new = np.take_along_axis(inputs['tokens'], inputs['predict_positions'], 1)[weights > 0]
  old = targets[weights > 0]
  n = len(old)
  masked = np.mean(new == MASK)
  kept = np.mean(new == old)
  random = 1 - masked - kept
  # Binomial standard error at n ~ 7000 is ~0.005; random tokens equal the
  # original 1/45 of the time, which moves ~0.002 from `random` to `kept`.
  assert n > 4000
  assert abs(masked - 0.8) < 0.02 and abs(random - 0.1 * 44 / 45) < 0.015
  assert abs(kept - 0.1 - 0.1 / 45) < 0.015
  assert not np.isin(new[new != MASK], SPECIAL).any(), 'a random replacement was special'


def test_mlm_mask_is_packed_and_keys_deterministic():
  batch = packed_batch(np.random.default_rng(2), rows=8)
  a, b = run_mlm(batch, seed=3), run_mlm(batch, seed=3)
  c = run_mlm(batch, seed=4)
  np.testing.assert_array_equal(a[0]['tokens'], b[0]['tokens'])
  assert not np.array_equal(a[0]['predict_positions'], c[0]['predict_positions'])
  np.testing.assert_array_equal(a[0]['mask'], masks.packed_mask(batch['segment_ids']))


def test_xlm_frequency_smoothing_matches_formula():
  """With weights ∝ count^-0.5, a token's pick rate ∝ its weight (few picks per row)."""
  rng = np.random.default_rng(5)
  rows, length = 4000, 40
  tokens = np.where(rng.random((rows, length)) < 0.5, 5, 6).astype(np.int32)
  batch = dict(tokens=tokens, segment_ids=np.ones_like(tokens),
               positions=np.broadcast_to(np.arange(length), tokens.shape).copy())
  counts = np.zeros(VOCAB)
  counts[5], counts[6] = 100.0, 25.0  # weights 0.1 and 0.2: token 6 twice as likely per slot
  token_weights = mlm.smoothed_weights(counts, 0.5)
  np.testing.assert_allclose(token_weights[[5, 6]], [0.1, 0.2], rtol=1e-6)
  fn = mlm.make(mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, num_predictions=4,
                rate=1 / length, token_weights=token_weights)
  _, targets, weights = jax.jit(fn)(jax.random.PRNGKey(0), batch)
  picked = np.asarray(targets)[np.asarray(weights) > 0]
  # One pick per row among ~20 of each: P(6) = 0.2 n6 / (0.1 n5 + 0.2 n6) ≈ 2/3.
  n5, n6 = (tokens == 5).sum(1), (tokens == 6).sum(1)
  expected = np.mean(0.2 * n6 / (0.1 * n5 + 0.2 * n6))
  assert abs(np.mean(picked == 6) - expected) < 0.03
  uniform = run_mlm(batch, rate=1 / length)[1]
  assert abs(np.mean(uniform[uniform > 0] == 6) - 0.5) < 0.05


def test_clm_targets_stay_inside_segments():
  tokens = np.array([[2, 7, 8, 3, 2, 9, 3, 0]], np.int32)
  seg = np.array([[1, 1, 1, 1, 2, 2, 2, 0]], np.int32)
  batch = dict(tokens=tokens, segment_ids=seg, positions=np.array([[0, 1, 2, 3, 0, 1, 2, 0]]))
  inputs, targets, weights = clm.make()(None, batch)
  np.testing.assert_array_equal(targets, [[7, 8, 3, 2, 9, 3, 0, 0]])
  np.testing.assert_array_equal(weights, [[1, 1, 1, 0, 1, 1, 0, 0]])
  np.testing.assert_array_equal(inputs['mask'], masks.causal_packed_mask(seg))


class Tok:
  mask_id, vocab_size, pad_id, bos_id, eos_id = MASK, VOCAB, PAD, BOS, EOS


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize('name', ['mlm', 'clm'])
def test_build_by_name(name):
  """objectives.build gives the named objective: the same inputs and targets as the bare
  function, one head named after it, and loss sums with the unigram baseline of the counts."""
  from plm import configlib, objectives  # pylint: disable=g-import-not-at-top
  config = configlib.base()
  config.objective.name, config.objective.num_predictions = name, 16
  counts = np.random.default_rng(7).integers(0, 100, VOCAB)
  objective = objectives.build(config, Tok, counts)
  assert objective.heads == (name,)
  batch = jax.tree_util.tree_map(jnp.asarray, packed_batch(np.random.default_rng(3), rows=8))
  key = jax.random.PRNGKey(5)
  inputs, targets = objective.prepare(key, batch, {})
  fn = (mlm.make(mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIAL, num_predictions=16)
        if name == 'mlm' else clm.make())
  want_inputs, want_ids, want_weights = fn(key, batch)
  assert sorted(inputs) == sorted(want_inputs)
  for k in inputs:
    np.testing.assert_array_equal(inputs[k], want_inputs[k], err_msg=k)
  np.testing.assert_array_equal(targets[name]['ids'], want_ids)
  np.testing.assert_array_equal(targets[name]['weights'], want_weights)
  assert float(want_weights.sum()) > 10  # the comparison covers real predictions
  # The loss: cross-entropy of the model's logits and the unigram baseline, summed.
  ids, w = np.asarray(want_ids), np.asarray(want_weights)
  logits = np.random.default_rng(4).normal(0, 2, ids.shape + (VOCAB,)).astype(np.float32)
  seen = {}
  def model_fn(**kw):
    seen.update(kw)
    return jnp.asarray(logits)
  sums = jax.tree_util.tree_map(float, objective.loss(model_fn, inputs, targets, {}))
  assert sorted(seen) == sorted(inputs)
  logp = _log_softmax(logits.astype(np.float64))
  picked = np.take_along_axis(logp, ids[..., None], -1)[..., 0]
  prior = counts.astype(np.float64) + 1
  prior[list(SPECIAL)] = 1e-9
  prior = np.log(prior / prior.sum())
  want = {'loss': -(picked * w).sum(), 'weight': w.sum(),
          'correct': ((logits.argmax(-1) == ids) * w).sum(),
          'unigram_loss': -(prior[ids] * w).sum(),
          'unigram_correct': ((ids == prior.argmax()) * w).sum()}
  assert sorted(sums) == sorted(f'{name}/{k}' for k in want)
  for k, v in want.items():
    assert sums[f'{name}/{k}'] == pytest.approx(v, rel=1e-4), k
  config.objective.loss_weights.nsp = 0.5
  with pytest.raises(ValueError, match=rf"loss_weights names \['nsp'\].*\['{name}'\]"):
    objectives.build(config, Tok, counts)
  config.objective.name = 'mlmm'
  with pytest.raises(ValueError, match=r"objective.name='mlmm' is unknown"):
    objectives.build(config, Tok, counts)
