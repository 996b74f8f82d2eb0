"""The held-out table of a params tree: an objective's metrics over every held-out row once.

The training loop's periodic evaluation, the compress job's before/after tables and a
distilled student's test table are all this table (plm/progress.py formats it).
"""
from typing import Callable

import jax

from plm import progress
from plm.data import mixing
from plm.objectives.base import ModelFn


def language_sets(data_config, tokenizer, split: str) -> dict:
  """{language: its monolingual rows of `split`} for every data.languages entry."""
  return {lang: mixing.monolingual_rows(data_config, tokenizer, split, lang)
          for lang in data_config.languages}


def objective_sums(model, objective, drop_langs: bool = False) -> Callable:
  """(params, batch, rng) -> the objective's summed metrics of `model`, in eval mode.

  drop_langs: the batch's 'langs' are left out (a model without language embeddings).
  """
  def sums(params, batch, rng):
    batch = {k: v for k, v in batch.items() if not (drop_langs and k == 'langs')}
    inputs, targets = objective.prepare(rng, batch, {})
    return objective.loss(ModelFn(model, {'params': params}, {}, True), inputs, targets, {})
  return sums


def table(sums: Callable[[dict], dict], datasets: dict, batch_size: int, **iterate) -> dict:
  """{set: {head: loss, perplexity, accuracy, ...}}: `sums(batch)` (metric sums) added up
  over each dataset's rows once (`iterate` goes to Rows.iterate_once)."""
  out = {}
  for name, rows in datasets.items():
    totals = None
    for batch in rows.iterate_once(batch_size, **iterate):
      batch_sums = jax.device_get(sums(batch))
      totals = batch_sums if totals is None else {k: totals[k] + batch_sums[k] for k in totals}
    out[name] = progress.table_from_sums(totals)
  return out


def params_table(model, objective, params, datasets: dict, batch_size: int, rng,
                 drop_langs: bool = False) -> dict:
  """The held-out table of `params` under `objective`, the same masks (`rng`) every batch."""
  jitted = jax.jit(objective_sums(model, objective, drop_langs))
  return table(lambda batch: jitted(params, batch, rng), datasets, batch_size)
