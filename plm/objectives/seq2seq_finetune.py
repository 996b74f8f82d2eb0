"""UNILM fine-tuning for generation (Dong et al., 2019, section 3.2).

One (source, target) pair per row, laid out by `plm.data.packing.pack_pair` as

  [bos] source [eos] target [eos] pad ...
  types:  0 ... 0 0  1 ... 1  1   0 ...

The row gets `masks.seq2seq_mask`: the source (with its bos/eos) is
bidirectional, each target token sees the source and the target up to itself.
`target_mask_rate` of the target tokens, its final eos included (predicting
it teaches the model when to stop), are replaced by [MASK] and predicted;
source tokens are never masked.

No 80/10/10 here: every picked token becomes [MASK]. At generation time UNILM
appends a [MASK] after the prefix and predicts it, so [MASK] is the only
corruption the model will meet; the released UNILM fine-tuning code
(`seq2seq_loader.py`) does the same.

Count rule, per row with n maskable target tokens (n > 0):
  n_mask = min(num_predictions, max(1, floor(rate * n + 1/2)))
rounding half up in exact integers (5 tokens at 0.7 give 4). The cap is
UNILM's `max_pred`: size `num_predictions` >= rate * (seq_len - 2) + 1 for
every target token to count at the full rate. Positions are uniform without
replacement (Gumbel top-k). Everything is jnp with an explicit key, run
inside the jitted step.

`make_pseudo` is the other scheme (finetune.target_masking='pseudo', s2s-ft's):
every target token is predicted by a [MASK] twin appended to the row, which sees
the source and the real target tokens before it, as a decoding step does.
"""
import fractions

import jax
import jax.numpy as jnp

from plm import masks
from plm.errors import UserError


def num_masked(n, rate: float):
  """max(1, round-half-up(rate * n)) for n > 0, else 0; exact integer maths.

  Works on Python ints and on integer jnp arrays alike.
  """
  frac = fractions.Fraction(rate).limit_denominator(10_000)
  num, den = frac.numerator, frac.denominator
  rounded = (2 * num * n + den) // (2 * den)
  if isinstance(n, int):
    return max(1, rounded) if n > 0 else 0
  return jnp.where(n > 0, jnp.maximum(rounded, 1), 0)


def make(*, mask_id: int, vocab_size: int, special_ids, num_predictions: int,
         target_mask_rate: float = 0.7):
  """Returns `finetune(rng, batch) -> (inputs, targets, weights)`.

  `batch` holds tokens, token_types, positions and `valid` or `segment_ids`
  (as made by `pack_pair`). Target tokens whose id is in `special_ids` are
  not masked, except the target's final token (its eos). With segment_ids,
  `masks.packed_mask` is ANDed in (a no-op for one pair per row).

  `inputs` feed `EncoderLM` (tokens, positions, mask, token_types,
  predict_positions); the model needs `num_segments >= 2`. Targets [B, P]
  (P = num_predictions) are the original tokens; weights are 1 on the first
  n_mask slots, 0 on the rest (their tokens are left unchanged).
  """
  if not 0.0 < target_mask_rate <= 1.0:
    raise UserError(f'finetune.target_mask_rate={target_mask_rate} must lie in (0, 1]')
  if num_predictions < 1:
    raise UserError(f'num_predictions={num_predictions} must be >= 1 (it follows finetune.seq_len and finetune.target_mask_rate)')
  if not 0 <= mask_id < vocab_size:
    raise UserError(f'mask_id={mask_id} is outside the vocabulary of size {vocab_size}')
  special = jnp.asarray(sorted(special_ids), jnp.int32)

  def finetune(rng, batch):
    tokens, token_types = batch['tokens'], batch['token_types']
    if 'valid' in batch:
      valid, seg_mask = batch['valid'] != 0, None
    else:
      valid = batch['segment_ids'] > 0
      seg_mask = masks.packed_mask(batch['segment_ids'])
    target = (token_types == 1) & valid
    # The target's last token (its eos) stays maskable even though it is special.
    next_target = jnp.pad(target[:, 1:], ((0, 0), (0, 1)))
    last = target & ~next_target
    eligible = target & (~jnp.isin(tokens, special) | last)

    n_mask = jnp.minimum(num_masked(eligible.sum(-1).astype(jnp.int32), target_mask_rate),
                         num_predictions)
    scores = jnp.where(eligible, jax.random.gumbel(rng, tokens.shape), -jnp.inf)
    _, positions = jax.lax.top_k(scores, num_predictions)
    weights = jnp.arange(num_predictions)[None, :] < n_mask[:, None]
    targets = jnp.take_along_axis(tokens, positions, axis=1)
    rows = jnp.arange(tokens.shape[0])[:, None]
    # top_k indices are distinct, so the scatter has no collisions.
    new_tokens = tokens.at[rows, positions].set(jnp.where(weights, mask_id, targets))
    inputs = dict(tokens=new_tokens, positions=batch['positions'],
                  mask=masks.combine_masks(masks.seq2seq_mask(token_types, valid), seg_mask),
                  token_types=token_types.astype(jnp.int32),
                  predict_positions=positions.astype(jnp.int32))
    return inputs, targets, weights.astype(jnp.float32)

  return finetune


def make_pseudo(*, mask_id: int, vocab_size: int, num_predictions: int):
  """Returns `finetune(rng, batch) -> (inputs, targets, weights)` for pseudo masking.

  s2s-ft's fine-tuning (UniLMv2, Bao et al., 2020; microsoft/unilm s2s-ft): rows
  come from `pack_pair(pseudo_target=True)`, so each target token has a twin slot
  flagged in `batch['pseudo']`. The twins become [MASK] and predict their tokens
  under `masks.pseudo_seq2seq_mask`: all target tokens are predicted every step,
  each seeing the real tokens before it, as at decoding time (the random scheme of
  `make` predicts a share, from a prefix that is mostly [MASK]). No randomness.

  num_predictions must hold every twin: >= (row length - 2) // 2, checked at trace time.
  """
  if not 0 <= mask_id < vocab_size:
    raise UserError(f'mask_id={mask_id} is outside the vocabulary of size {vocab_size}')

  def finetune(rng, batch):
    del rng
    if 'pseudo' not in batch or 'valid' not in batch:
      raise UserError("pseudo masking needs batches from pack_pair(pseudo_target=True) "
                      "('pseudo' and 'valid' arrays); set finetune.target_masking "
                      "consistently for the data and the objective")
    tokens, token_types = batch['tokens'], batch['token_types']
    length = tokens.shape[1]
    if num_predictions < (length - 2) // 2:
      raise UserError(f'num_predictions={num_predictions} < (row length {length} - 2) // 2: '
                      'some targets would not be predicted')
    valid = batch['valid'] != 0
    pseudo = (batch['pseudo'] != 0) & valid
    # The twins in row order: the highest scores go to the earliest pseudo slots.
    order = jnp.where(pseudo, length - jnp.arange(length), 0)
    _, positions = jax.lax.top_k(order, num_predictions)
    weights = jnp.take_along_axis(pseudo, positions, axis=1)
    targets = jnp.take_along_axis(tokens, positions, axis=1)
    inputs = dict(tokens=jnp.where(pseudo, mask_id, tokens), positions=batch['positions'],
                  mask=masks.pseudo_seq2seq_mask(token_types, pseudo, batch['positions'],
                                                 valid),
                  token_types=token_types.astype(jnp.int32),
                  predict_positions=positions.astype(jnp.int32))
    return inputs, targets, weights.astype(jnp.float32)

  return finetune
