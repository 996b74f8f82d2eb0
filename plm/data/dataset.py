"""The one protocol every training dataset keeps: what the loop (plm/train.py) reads.

  batch(step, batch_size, seed=, process_index=, process_count=)
      this process's rows of global batch `step`: a pure function of (seed, step),
      so a run resumed at step s reads exactly the batches an uninterrupted one would
  iterator(batch_size, seed=, ...)
      None for in-memory rows (the loop calls `batch`); a checkpointable grain
      iterator for streamed ones (its state goes into every checkpoint)
  fingerprint, len(), token_counts(vocab_size)
  meta   what a checkpoint must match to resume (plm/meta.py), e.g. ERNIE 2.0's schedule
  info   counts about how the rows were made, saved in results.json

Rows (plm/data/rows.py; TransE's triples), MixedDataset (mixing.py),
ScheduledDataset (schedule.py) and PreparedDataset (prepared.py) implement it.
"""
import types

import numpy as np


class Dataset:
  """Training rows in a (seed, step)-determined order; subclasses define `batch`,
  `fingerprint`, `__len__` and, where they count tokens, `token_counts`."""
  meta = types.MappingProxyType({})  # {} = nothing beyond the model and data to match
  info = types.MappingProxyType({})  # {} = nothing to report

  def __len__(self) -> int:
    raise NotImplementedError

  @property
  def fingerprint(self) -> str:
    raise NotImplementedError

  def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
            process_count: int = 1) -> dict[str, np.ndarray]:
    raise NotImplementedError

  def iterator(self, batch_size: int, *, seed: int, process_index: int = 0,
               process_count: int = 1):
    """None: in-memory rows are read by `batch(step, ...)`, no iterator state to save."""
    del batch_size, seed, process_index, process_count
    return None

  def token_counts(self, vocab_size: int) -> np.ndarray:
    raise NotImplementedError(f'{type(self).__name__} does not count tokens')


def permutation(key: tuple[int, ...], n: int) -> np.ndarray:
  """Rows 0..n-1 in the order of `key` (seed, ..., epoch): each row once, a pure function
  of the key; an epoch's order in MixedDataset and TripleRows. (Rows keeps grain's index
  shuffle: the orders of existing runs, and their resumes, depend on it.)"""
  return np.random.default_rng(list(key)).permutation(n)
