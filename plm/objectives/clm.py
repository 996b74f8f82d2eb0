"""Causal language modelling (XLM's CLM): predict each next token, left to right."""
import jax.numpy as jnp

from plm import masks


def make():
  """Returns `clm(rng, batch) -> (inputs, targets, weights)` for packed rows.

  Position i predicts token i+1 when both lie in the same packed segment, so
  no prediction crosses from one document into the next.
  """

  def clm(rng, batch):
    del rng  # CLM corrupts nothing
    tokens, seg = batch['tokens'], batch['segment_ids']
    targets = jnp.pad(tokens[:, 1:], ((0, 0), (0, 1)))
    next_seg = jnp.pad(seg[:, 1:], ((0, 0), (0, 1)))
    weights = ((seg > 0) & (next_seg == seg)).astype(jnp.float32)
    inputs = dict(tokens=tokens, positions=batch['positions'],
                  mask=masks.causal_packed_mask(seg))
    if 'langs' in batch:
      inputs['langs'] = batch['langs']
    return inputs, targets, weights

  return clm
