"""Objectives: pure `(rng, batch) -> (inputs, targets, weights)` functions.

`build(config, tokenizer, token_counts)` picks one by `config.objective.name`.
"""
import numpy as np

from plm.objectives import clm, mlm

NAMES = ('mlm', 'clm')


def build(objective_config, tokenizer, token_counts: np.ndarray | None = None):
  """The objective function named by `objective.name`."""
  name = objective_config.name
  if name == 'mlm':
    weights = None
    if objective_config.mlm_smoothing:
      weights = mlm.smoothed_weights(token_counts, objective_config.mlm_smoothing)
    return mlm.make(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                    special_ids=(tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id,
                                 tokenizer.mask_id),
                    num_predictions=objective_config.num_predictions,
                    rate=objective_config.mask_rate, token_weights=weights)
  if name == 'clm':
    return clm.make()
  raise ValueError(f'objective.name={name!r} is unknown; use one of {NAMES}')
