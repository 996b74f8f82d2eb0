"""Pooling hidden states [B, L, H] over a row's real tokens into sentence vectors [B, H]."""
import jax.numpy as jnp

from plm.errors import UserError

POOLINGS = ('mean', 'max', 'first')


def pool(hidden, valid, how: str):
  """[B, L, H] -> [B, H] over `valid` [B, L]: mean, max (padding never wins; a row with no
  valid token gives 0) or first (the bos position)."""
  if how not in POOLINGS:
    raise UserError(f'pooling={how!r}: use one of {POOLINGS}')
  w = valid[..., None]
  if how == 'mean':
    w = w.astype(hidden.dtype)
    return (hidden * w).sum(1) / jnp.maximum(w.sum(1), 1.0)
  if how == 'max':
    pooled = jnp.where(w, hidden, -jnp.inf).max(1)
    return jnp.where(jnp.any(w, axis=1), pooled, 0.0)
  return hidden[:, 0]
