"""UNILM (Dong et al., 2019): one encoder, four LM objectives chosen per example.

Each row draws an objective from `mix` (plm.masks id order: bidirectional,
left-to-right, right-to-left, seq2seq) and is given that attention mask,
restricted to its packed segments so documents never see each other. All rows
are trained with the same cloze task: `rate` (15%) of the non-special tokens
on average, in units that are a single token or, `ngram_prob` of the time, a
bigram or trigram (half each), are replaced 80/10/10 and predicted.

Source/target split (seq2seq rows): every packed segment of the row is its own
(source, target) pair, cut at a uniform random offset in [1, len - 1] from the
segment's bos, so the source keeps at least the bos and the target at least one
token. `token_types` is 1 on target tokens of seq2seq rows and 0 everywhere
else, so type 1 also tells the model that the row is seq2seq. Cutting inside a
segment needs no host-side sentence pairs, keeps shapes static, and since
`packed_mask` is ANDed in, a target token sees exactly its own segment's
source plus its own earlier target tokens.

Everything is jnp with an explicit key and runs inside the jitted step.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plm import masks
from plm.errors import UserError
from plm.objectives import mlm

DEFAULT_MIX = (1 / 3, 1 / 6, 1 / 6, 1 / 3)  # the paper's shares, plm.masks id order
MAX_NGRAM = 3


class Plan(NamedTuple):
  """What one call decided, before the 80/10/10 corruption."""
  objective_ids: jax.Array  # [B] int32, plm.masks.BIDIRECTIONAL .. SEQ2SEQ
  token_types: jax.Array  # [B, L] int32, 1 = seq2seq target
  masked: jax.Array  # [B, L] bool, the predicted positions
  span_starts: jax.Array  # [B, U] int32, first position of each masked unit
  span_lengths: jax.Array  # [B, U] int32, 1..3, 0 = slot unused


def check_mix(mix) -> np.ndarray:
  """`mix` as 4 probabilities in plm.masks id order; a mapping may name objectives."""
  if hasattr(mix, 'items'):  # a dict or ConfigDict keyed by objective name
    mix = dict(mix.items())
    unknown = sorted(set(mix) - set(masks.OBJECTIVE_NAMES))
    if unknown:
      raise UserError(f'objective.unilm_mix names unknown objectives {unknown}; use '
                      f'{masks.OBJECTIVE_NAMES}')
    mix = [mix.get(name, 0.0) for name in masks.OBJECTIVE_NAMES]
  try:
    p = np.asarray(mix, np.float64)
  except (TypeError, ValueError):
    p = None
  if p is None or p.shape != (4,):
    raise UserError(f'objective.unilm_mix={mix!r} must give 4 probabilities, for '
                    f'{masks.OBJECTIVE_NAMES}')
  if not (np.isfinite(p).all() and (p >= 0).all() and abs(p.sum() - 1.0) <= 1e-6):
    raise UserError(f'objective.unilm_mix={tuple(mix)} must be non-negative and sum to 1 '
                    f'(it sums to {p.sum():.6g}); order is {masks.OBJECTIVE_NAMES}')
  return p


def source_target_split(rng, segment_ids) -> jax.Array:
  """[B, L] int32: 1 from a random cut onwards inside every packed segment.

  Example, segment_ids = [1, 1, 1, 1, 2, 2, 0] with cuts at offsets 2 and 1:
    [0, 0, 1, 1, 0, 1, 0]
  """
  seg = jnp.asarray(segment_ids)
  length = seg.shape[1]
  idx = jnp.broadcast_to(jnp.arange(length), seg.shape)
  prev = jnp.pad(seg[:, :-1], ((0, 0), (1, 0)))
  nxt = jnp.pad(seg[:, 1:], ((0, 0), (0, 1)))
  inside = seg > 0
  start = jax.lax.cummax(jnp.where(inside & (seg != prev), idx, 0), axis=1)
  end = jax.lax.cummin(jnp.where(inside & (seg != nxt), idx + 1, length), axis=1,
                       reverse=True)
  n = end - start
  # One uniform per segment, read at its first position.
  u = jnp.take_along_axis(jax.random.uniform(rng, seg.shape), start, axis=1)
  cut = jnp.minimum(1 + jnp.floor(u * (n - 1)).astype(jnp.int32), jnp.maximum(n - 1, 1))
  return (inside & (idx - start >= cut)).astype(jnp.int32)


def span_mask(rng, eligible, segment_ids, n_target, num_units: int, ngram_prob: float):
  """Non-overlapping masked units until each row holds >= `n_target` tokens.

  Unit u has length 1, or 2 or 3 (equally likely) with probability
  `ngram_prob`; its start is uniform among the positions where that many
  eligible, unmasked tokens of one segment follow. A unit that fits nowhere is
  skipped (slot length 0). The last unit may overshoot `n_target` by up to 2
  tokens, so unit lengths keep their distribution; the total never exceeds
  `num_units` (a unit is shortened to fit, the only cut).

  Returns (masked [B, L] bool, starts [B, U] int32, lengths [B, U] int32).
  """
  batch, length = eligible.shape
  k_ngram, k_size, k_start = jax.random.split(rng, 3)
  is_ngram = jax.random.uniform(k_ngram, (num_units, batch)) < ngram_prob
  sizes = 2 + jax.random.bernoulli(k_size, 0.5, (num_units, batch)).astype(jnp.int32)
  wanted = jnp.where(is_ngram, sizes, 1)
  idx = jnp.arange(length)[None, :]
  seg = jnp.asarray(segment_ids)

  def shift(x, o, fill):  # x[:, i + o]
    return jnp.pad(x[:, o:], ((0, 0), (0, o)), constant_values=fill)

  same_seg = [shift(seg, o, -1) == seg for o in range(MAX_NGRAM)]

  def place(carry, xs):
    covered, count = carry
    u, want = xs
    free = eligible & ~covered
    fits, ok = [], jnp.ones_like(free)
    for o in range(MAX_NGRAM):  # fits[o]: a unit of o + 1 tokens may start here
      ok = ok & shift(free, o, False) & same_seg[o]
      fits.append(ok)
    size = jnp.where(count < n_target, jnp.minimum(want, num_units - count), 0)
    fit = jnp.take_along_axis(jnp.stack(fits, 1), jnp.maximum(size - 1, 0)[:, None, None],
                              axis=1)[:, 0]
    scores = jnp.where(fit, jax.random.gumbel(jax.random.fold_in(k_start, u), fit.shape),
                       -jnp.inf)
    start = jnp.argmax(scores, -1).astype(jnp.int32)
    size = jnp.where(fit.any(-1), size, 0)
    start = jnp.where(size > 0, start, 0)
    span = (idx >= start[:, None]) & (idx < (start + size)[:, None])
    return (covered | span, count + size), (start, size)

  init = (jnp.zeros(eligible.shape, bool), jnp.zeros((batch,), jnp.int32))
  (covered, _), (starts, sizes) = jax.lax.scan(place, init, (jnp.arange(num_units), wanted))
  return covered, starts.T, sizes.T


def make(*, mask_id: int, vocab_size: int, special_ids, num_predictions: int,
         rate: float = 0.15, mix=DEFAULT_MIX, ngram_prob: float = 0.2,
         mask_prob: float = 0.8, random_prob: float = 0.1):
  """Returns `unilm(rng, batch) -> (inputs, targets, weights)` for packed rows.

  `inputs` holds tokens, positions, mask, token_types and predict_positions
  (the model needs `model.num_segments >= 2`; no `langs`: UNILM has no language
  embeddings). `num_predictions` slots per row should be >= rate * seq_len + 2.
  `unilm(rng, batch, with_plan=True)` also returns the `Plan`.
  """
  p = check_mix(mix)
  if not 0.0 <= ngram_prob <= 1.0:
    raise UserError(f'objective.ngram_prob={ngram_prob} must lie in [0, 1]')
  if not 0.0 < rate <= 1.0 or num_predictions < 1:
    raise UserError(f'objective.mask_rate={rate} must lie in (0, 1] and '
                    f'objective.num_predictions={num_predictions} be >= 1')
  log_mix = jnp.log(jnp.asarray(p, jnp.float32))
  special = jnp.asarray(sorted(special_ids), jnp.int32)
  first_normal_id = int(max(special_ids)) + 1
  overshoot = 2 * ngram_prob / (1 + 1.5 * ngram_prob)

  def unilm(rng, batch, with_plan: bool = False):
    tokens, seg = batch['tokens'], batch['segment_ids']
    k_obj, k_split, k_round, k_span, k_corrupt = jax.random.split(rng, 5)
    objective_ids = jax.random.categorical(k_obj, log_mix, shape=tokens.shape[:1])
    seq2seq = (objective_ids == masks.SEQ2SEQ)[:, None]
    token_types = jnp.where(seq2seq, source_target_split(k_split, seg), 0)
    mask = masks.combine_masks(masks.unilm_mask(objective_ids, token_types, seg > 0),
                               masks.packed_mask(seg))

    eligible = ~jnp.isin(tokens, special) & (seg > 0)
    # Stochastic rounding as mlm.pick_positions, less the mean overshoot of the
    # last unit (renewal theory: E[l(l-1)] / 2E[l]), so rate * eligible on average.
    n_eligible = eligible.sum(-1)
    n_target = jnp.floor(rate * n_eligible - overshoot
                         + jax.random.uniform(k_round, n_eligible.shape))
    masked, starts, lengths = span_mask(k_span, eligible, seg, n_target.astype(jnp.int32),
                                        num_predictions, ngram_prob)
    corrupted, positions, targets, weights = mlm.predict_masked(
        k_corrupt, tokens, masked, num_predictions, mask_id=mask_id, vocab_size=vocab_size,
        first_normal_id=first_normal_id, mask_prob=mask_prob, random_prob=random_prob)
    inputs = dict(tokens=corrupted, positions=batch['positions'], mask=mask,
                  token_types=token_types.astype(jnp.int32), predict_positions=positions)
    out = (inputs, targets, weights)
    if with_plan:
      return out + (Plan(objective_ids.astype(jnp.int32), inputs['token_types'], masked,
                         starts, lengths),)
    return out

  return unilm
