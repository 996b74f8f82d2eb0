"""Attention masks for every objective in the project.

All functions are pure jnp, jit-safe, and return bool arrays of shape
`[batch, 1, q_len, kv_len]` where True means "query may attend to key".
Models never build masks themselves; they receive one of these.

Conventions:
  valid:       bool/int [B, L]; True/1 = real token, False/0 = padding.
  segment_ids: int [B, L] for packed rows; 0 = padding, k > 0 = k-th sequence.
  token_types: int [B, L]; 0 = source, 1 = target (seq2seq / UNILM).

Padding keys are never attended and padding query rows are all False.
"""

from typing import Optional

import jax.numpy as jnp

from plm.errors import UserError

Array = jnp.ndarray

# Objective ids for `unilm_mask`.
BIDIRECTIONAL = 0
LEFT_TO_RIGHT = 1
RIGHT_TO_LEFT = 2
SEQ2SEQ = 3
OBJECTIVE_NAMES = ('bidirectional', 'left_to_right', 'right_to_left',
                   'seq2seq')


def _bool(x) -> Array:
  x = jnp.asarray(x)
  return x if x.dtype == jnp.bool_ else x != 0


def _positions(length: int):
  """Returns (query_pos [1,1,L,1], key_pos [1,1,1,L])."""
  pos = jnp.arange(length)
  return pos[None, None, :, None], pos[None, None, None, :]


def make_attention_mask(query_ok, key_ok) -> Array:
  """Outer AND of per-position flags: [B, Q], [B, K] -> [B, 1, Q, K].

  Example, query_ok = [[1, 1, 0]], key_ok = [[1, 0]]:
    [[1, 0],
     [1, 0],
     [0, 0]]
  """
  q, k = _bool(query_ok), _bool(key_ok)
  return q[:, None, :, None] & k[:, None, None, :]


def combine_masks(*masks: Optional[Array]) -> Optional[Array]:
  """Logical AND of masks; None entries are ignored (all None -> None).

  Example, [[1, 1], [0, 1]] AND [[1, 0], [1, 1]]:
    [[1, 0],
     [0, 1]]
  """
  masks = [m for m in masks if m is not None]
  if not masks:
    return None
  ndims = {m.ndim for m in masks}
  if len(ndims) != 1:
    raise UserError(f'Masks must have the same rank, got {ndims}.')
  out = _bool(masks[0])
  for m in masks[1:]:
    out = jnp.logical_and(out, _bool(m))
  return out


def padding_mask(valid) -> Array:
  """Bidirectional attention among valid tokens (BERT/XLM MLM, TLM).

  Example, valid = [1, 1, 1, 0]:
    [[1, 1, 1, 0],
     [1, 1, 1, 0],
     [1, 1, 1, 0],
     [0, 0, 0, 0]]
  """
  return make_attention_mask(valid, valid)


def packed_mask(segment_ids) -> Array:
  """Attention only within the same nonzero segment of a packed row.

  Example, segment_ids = [1, 1, 2, 0]:
    [[1, 1, 0, 0],
     [1, 1, 0, 0],
     [0, 0, 1, 0],
     [0, 0, 0, 0]]
  """
  seg = jnp.asarray(segment_ids)
  same = seg[:, None, :, None] == seg[:, None, None, :]
  return same & make_attention_mask(seg > 0, seg > 0)


def causal_mask(valid) -> Array:
  """Left-to-right: query i attends key j iff j <= i and both are valid.

  Example, valid = [1, 1, 1, 0]:
    [[1, 0, 0, 0],
     [1, 1, 0, 0],
     [1, 1, 1, 0],
     [0, 0, 0, 0]]
  """
  qpos, kpos = _positions(jnp.shape(valid)[-1])
  return (kpos <= qpos) & padding_mask(valid)


def right_to_left_mask(valid) -> Array:
  """Right-to-left: query i attends key j iff j >= i and both are valid.

  Example, valid = [1, 1, 1, 0]:
    [[1, 1, 1, 0],
     [0, 1, 1, 0],
     [0, 0, 1, 0],
     [0, 0, 0, 0]]
  """
  qpos, kpos = _positions(jnp.shape(valid)[-1])
  return (kpos >= qpos) & padding_mask(valid)


def seq2seq_mask(token_types, valid) -> Array:
  """UNILM seq2seq / prefix LM: bidirectional source, causal target.

  Source queries attend every valid source key; target queries attend every
  valid source key plus target keys j <= i.

  Example, token_types = [0, 0, 1, 1, 1, 0], valid = [1, 1, 1, 1, 1, 0]:
    [[1, 1, 0, 0, 0, 0],
     [1, 1, 0, 0, 0, 0],
     [1, 1, 1, 0, 0, 0],
     [1, 1, 1, 1, 0, 0],
     [1, 1, 1, 1, 1, 0],
     [0, 0, 0, 0, 0, 0]]
  """
  tgt = jnp.asarray(token_types) == 1
  qpos, kpos = _positions(tgt.shape[-1])
  key_src = ~tgt[:, None, None, :]
  both_tgt = make_attention_mask(tgt, tgt)
  allowed = key_src | (both_tgt & (kpos <= qpos))
  return allowed & padding_mask(valid)


def pseudo_seq2seq_mask(token_types, pseudo, positions, valid) -> Array:
  """seq2seq_mask for rows with a pseudo-masked target (s2s-ft, UniLMv2 fine-tuning).

  The row is `[bos] source [eos] target [eos] [MASK] ... [MASK]`: one [MASK]
  (pseudo = 1, token type 1) per target token, at that token's position. Source
  and real target tokens attend as in seq2seq_mask and never see a [MASK]; the
  [MASK] standing for target token i attends the source, the real target tokens
  before i (smaller position) and itself: exactly what a decoding step sees when
  it predicts token i, so every target token is trained in the decoding condition.

  Example, token_types = [0, 0, 1, 1, 1, 1], pseudo = [0, 0, 0, 0, 1, 1],
  positions = [0, 1, 2, 3, 2, 3], valid = all 1:
    [[1, 1, 0, 0, 0, 0],
     [1, 1, 0, 0, 0, 0],
     [1, 1, 1, 0, 0, 0],
     [1, 1, 1, 1, 0, 0],
     [1, 1, 0, 0, 1, 0],
     [1, 1, 1, 0, 0, 1]]
  """
  types, pseudo, pos = jnp.asarray(token_types), _bool(pseudo), jnp.asarray(positions)
  real = seq2seq_mask(types, valid) & ~pseudo[:, None, None, :]
  src_key = (types == 0)[:, None, None, :]
  tgt_key = ((types == 1) & ~pseudo)[:, None, None, :]
  earlier = pos[:, None, None, :] < pos[:, None, :, None]
  qpos, kpos = _positions(types.shape[-1])
  from_pseudo = src_key | (tgt_key & earlier) | (qpos == kpos)
  allowed = jnp.where(pseudo[:, None, :, None], from_pseudo, real)
  return allowed & padding_mask(valid)


def cross_attention_mask(query_valid, key_valid) -> Array:
  """Decoder queries [B, Q] to encoder keys [B, K]; lengths may differ.

  Example, query_valid = [1, 1, 0], key_valid = [1, 1, 1, 0]:
    [[1, 1, 1, 0],
     [1, 1, 1, 0],
     [0, 0, 0, 0]]
  """
  return make_attention_mask(query_valid, key_valid)


def unilm_mask(objective_ids, token_types, valid) -> Array:
  """Per-example choice among UNILM's four masks; objective_ids int [B].

  0 = BIDIRECTIONAL (padding_mask), 1 = LEFT_TO_RIGHT (causal_mask),
  2 = RIGHT_TO_LEFT (right_to_left_mask), 3 = SEQ2SEQ (seq2seq_mask).
  Unknown ids give an all-False mask. Works with traced objective_ids.

  Example, valid = [1, 1, 1], token_types = [0, 1, 1],
  objective_ids = [0, 1, 2, 3] gives, per example:
    0: [[1, 1, 1],   1: [[1, 0, 0],   2: [[1, 1, 1],   3: [[1, 0, 0],
        [1, 1, 1],       [1, 1, 0],       [0, 1, 1],       [1, 1, 0],
        [1, 1, 1]]       [1, 1, 1]]       [0, 0, 1]]       [1, 1, 1]]
  """
  obj = jnp.asarray(objective_ids)[:, None, None, None]
  choices = [
      padding_mask(valid),
      causal_mask(valid),
      right_to_left_mask(valid),
      seq2seq_mask(token_types, valid),
  ]
  ids = [BIDIRECTIONAL, LEFT_TO_RIGHT, RIGHT_TO_LEFT, SEQ2SEQ]
  return jnp.select([obj == i for i in ids], choices, default=False)


def causal_packed_mask(segment_ids) -> Array:
  """Causal attention within each packed segment (CLM on packed rows).

  Example, segment_ids = [1, 1, 2, 2, 0]:
    [[1, 0, 0, 0, 0],
     [1, 1, 0, 0, 0],
     [0, 0, 1, 0, 0],
     [0, 0, 1, 1, 0],
     [0, 0, 0, 0, 0]]
  """
  seg = jnp.asarray(segment_ids)
  return combine_masks(packed_mask(seg), causal_mask(seg > 0))
