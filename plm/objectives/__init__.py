"""Objectives: pure `(rng, batch) -> (inputs, targets, weights)` functions.

`build(config, tokenizer, token_counts)` picks one by `config.objective.name`.
"""
import numpy as np

from plm.objectives import clm, mlm, unilm

NAMES = ('mlm', 'clm', 'unilm')


def build(objective_config, tokenizer, token_counts: np.ndarray | None = None):
  """The objective function named by `objective.name`."""
  name = objective_config.name
  special = (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.mask_id)
  if name == 'mlm':
    weights = None
    if objective_config.mlm_smoothing:
      weights = mlm.smoothed_weights(token_counts, objective_config.mlm_smoothing)
    return mlm.make(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                    special_ids=special,
                    num_predictions=objective_config.num_predictions,
                    rate=objective_config.mask_rate, token_weights=weights)
  if name == 'clm':
    return clm.make()
  if name == 'unilm':
    return unilm.make(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                      special_ids=special,
                      num_predictions=objective_config.num_predictions,
                      rate=objective_config.mask_rate, mix=objective_config.unilm_mix,
                      ngram_prob=objective_config.ngram_prob)
  raise ValueError(f'objective.name={name!r} is unknown; use one of {NAMES}')
