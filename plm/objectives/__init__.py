"""Objectives: what a step trains, as `plm.objectives.base.Objective`s.

`build(config, tokenizer, token_counts)` picks the pre-training objective by
`config.objective.name`; fine-tuning jobs build theirs from the same parts.
Every token objective here has one head, named after it.
"""
import numpy as np

from plm.errors import UserError
from plm.objectives import base, clm, mass, mlm, unilm

NAMES = ('mlm', 'clm', 'unilm', 'mass')


def special_ids(tokenizer) -> tuple[int, ...]:
  return (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.mask_id)


def build(config, tokenizer, token_counts: np.ndarray) -> base.Objective:
  """The objective named by `objective.name`, with the unigram baseline of `token_counts`."""
  oc, name = config.objective, config.objective.name
  special = special_ids(tokenizer)
  if name == 'mlm':
    weights = None
    if oc.mlm_smoothing:
      weights = mlm.smoothed_weights(token_counts, oc.mlm_smoothing)
    fn = mlm.make(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                  special_ids=special, num_predictions=oc.num_predictions, rate=oc.mask_rate,
                  token_weights=weights)
  elif name == 'clm':
    fn = clm.make()
  elif name == 'unilm':
    fn = unilm.make(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                    special_ids=special, num_predictions=oc.num_predictions, rate=oc.mask_rate,
                    mix=oc.unilm_mix, ngram_prob=oc.ngram_prob)
  elif name == 'mass':  # sentence rows (plm.data.sentences) into the seq2seq model
    fn = mass.make(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                   special_ids=special, span=oc.mass_span, num_predictions=oc.num_predictions,
                   span_tokens=oc.mass_span_tokens)
  else:
    raise UserError(f'objective.name={name!r} is unknown; use one of {NAMES}')
  objective = base.token_objective(name, fn, prior_logp=base.unigram_logp(token_counts, special),
                                   loss_chunk=config.train.loss_chunk)
  base.loss_weights(objective, oc.get('loss_weights'))  # an unknown head fails here, at start
  return objective
