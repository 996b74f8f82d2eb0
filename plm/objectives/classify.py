"""Sequence classification: one label per row, read from the first token.

The mask is bidirectional over the row's valid tokens (`segment_ids > 0`);
all-padding rows (the filler of a last evaluation batch) get weight 0. The
baseline is the training class distribution (majority class and its
cross-entropy), reported as the head's unigram.
"""
import jax.numpy as jnp
import numpy as np

from plm import masks
from plm.objectives import base

HEAD = 'classify'


def prepare(rng, batch, extras):
  del rng, extras  # nothing is random, nothing frozen
  valid = batch['segment_ids'] > 0
  inputs = dict(tokens=batch['tokens'], positions=batch['positions'],
                mask=masks.padding_mask(valid))
  for key in ('langs', 'token_types'):  # token types: sentence pairs (A = 0, B = 1)
    if key in batch:
      inputs[key] = batch[key]
  return inputs, {HEAD: dict(ids=batch['labels'], weights=valid[:, 0].astype(jnp.float32))}


def make(class_counts: np.ndarray) -> base.Objective:
  """The classification objective; `class_counts` give the majority-class baseline."""
  logp = jnp.asarray(base.unigram_logp(np.asarray(class_counts)))

  def loss(model_fn, inputs, targets, extras):
    del extras
    t = targets[HEAD]
    return base.prediction_sums(HEAD, model_fn(**inputs), t['ids'], t['weights'], logp)

  return base.Objective(prepare, loss, (HEAD,))
