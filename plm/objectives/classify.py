"""Sequence classification: one label per row, read from the first token.

`(rng, batch) -> (inputs, targets, weights)` like every objective, so the
training loop's step functions serve fine-tuning unchanged. The mask is
bidirectional over the row's valid tokens (`segment_ids > 0`); all-padding rows
(the filler of a last evaluation batch) get weight 0.
"""
import jax.numpy as jnp

from plm import masks


def make():
  def classify(rng, batch):
    del rng  # nothing is random
    valid = batch['segment_ids'] > 0
    inputs = dict(tokens=batch['tokens'], positions=batch['positions'],
                  mask=masks.padding_mask(valid))
    if 'langs' in batch:
      inputs['langs'] = batch['langs']
    return inputs, batch['labels'], valid[:, 0].astype(jnp.float32)
  return classify
