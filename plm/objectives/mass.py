"""MASS (Song et al., 2019): mask one span of a sentence, decode it from the rest.

Reads sentence rows (plm.data.sentences: `[bos] w_1 .. w_n [eos] pad`). Per
row, one contiguous span of m tokens among w_1..w_n (never bos, eos or pad):
  m = objective.mass_span_tokens (capped at n) when > 0, else
  m = max(1, round-half-up(k * n)) with k = objective.mass_span
(k = 1.0 is GPT-like: the whole sentence). The start is uniform over the
n - m + 1 starts that fit.
  encoder: the sentence with the span 80% [MASK], 10% random, 10% kept
  decoder: slot j < m reads the token before w_{start+j} (w_{start-1}, the
           bos when start = 1) at position start + j, and predicts w_{start+j};
           slots j >= m are padding with weight 0.

Example, tokens `b 7 8 9 6 e`, k = 0.5 (n = 4, m = 2), start 2, P = 3:
  src_tokens     b 7 M M 6 e     (M: [MASK], or 10/10 random / kept)
  tgt_tokens     7 8 0           tgt_positions 2 3 0
  ids            8 9 0           weights       1 1 0
  tgt_mask: causal over the 2 valid slots; cross_mask: valid slots x the 6 tokens.
"""
import jax
import jax.numpy as jnp

from plm import masks
from plm.errors import UserError
from plm.objectives import mlm, seq2seq_finetune


def span_length(n, span: float, span_tokens: int = 0):
  """Tokens in the span of a sentence of `n` tokens (0 when n = 0); ints or int arrays."""
  if span_tokens > 0:
    return min(span_tokens, n) if isinstance(n, int) else jnp.minimum(span_tokens, n)
  return seq2seq_finetune.num_masked(n, span)


def make(*, mask_id: int, vocab_size: int, special_ids, span: float, num_predictions: int,
         span_tokens: int = 0, mask_prob: float = 0.8, random_prob: float = 0.1):
  """Returns `mass(rng, batch) -> (inputs, ids, weights)` for sentence rows.

  `inputs` are the seq2seq model's keywords (src_*, tgt_*, cross_mask); ids and
  weights are [B, num_predictions]. mask_prob / random_prob: the 80/10/10 split
  of the span's encoder tokens (as plm.objectives.mlm).
  """
  if not 0.0 < span <= 1.0:
    raise UserError(f'objective.mass_span={span} must lie in (0, 1]')
  if span_tokens < 0:
    raise UserError(f'objective.mass_span_tokens={span_tokens} must be >= 0 (0 = use '
                    'objective.mass_span)')
  if num_predictions < 1:
    raise UserError(f'objective.num_predictions={num_predictions} must be >= 1')
  first_normal_id = int(max(special_ids)) + 1

  def mass(rng, batch):
    tokens, seg = batch['tokens'], batch['segment_ids']
    length = tokens.shape[1]
    # Static shapes: the longest sentence a row can hold sets the largest span.
    largest = span_length(length - 2, span, span_tokens)
    if num_predictions < largest:
      raise UserError(
         f'objective.num_predictions={num_predictions} is smaller than the largest MASS span '
         f'({largest} tokens of a {length}-token row); raise objective.num_predictions to '
         f'{largest} or more')
    k_start, k_corrupt = jax.random.split(rng)
    valid = seg > 0
    n = jnp.maximum(valid.sum(-1) - 2, 0).astype(jnp.int32)  # words between bos and eos
    m = span_length(n, span, span_tokens)
    # Uniform over starts 1 .. n - m + 1 (a padding row gets start 1, m = 0).
    start = jax.random.randint(k_start, n.shape, 1, n - m + 2)

    index = jnp.arange(length)[None, :]
    in_span = (index >= start[:, None]) & (index < (start + m)[:, None])
    src_tokens = mlm.corrupt(k_corrupt, tokens, in_span, mask_id=mask_id,
                             vocab_size=vocab_size, first_normal_id=first_normal_id,
                             mask_prob=mask_prob, random_prob=random_prob)

    slot = jnp.arange(num_predictions)[None, :]
    slot_ok = slot < m[:, None]
    at = jnp.minimum(start[:, None] + slot, length - 1)  # clipped slots are padding anyway

    def gather(x, idx):
      return jnp.where(slot_ok, jnp.take_along_axis(x, idx, axis=1), 0)

    ids = gather(tokens, at)
    inputs = dict(
        src_tokens=src_tokens, src_positions=batch['positions'],
        src_mask=masks.padding_mask(valid),
        tgt_tokens=gather(tokens, at - 1), tgt_positions=gather(batch['positions'], at),
        tgt_mask=masks.causal_mask(slot_ok),
        cross_mask=masks.cross_attention_mask(slot_ok, valid))
    if 'langs' in batch:
      inputs.update(src_langs=batch['langs'], tgt_langs=gather(batch['langs'], at))
    return inputs, ids.astype(jnp.int32), slot_ok.astype(jnp.float32)

  return mass
