"""The in-memory dataset: rows under any keys, in a (seed, step)-determined order
(plm/data/dataset.py is the protocol every training dataset keeps).

`Rows` holds int32 numpy arrays that share their first dimension (rows): packed
MLM rows (tokens, segment_ids, positions, langs), TLM pairs, labelled examples
(tokens, labels, ...), anything an objective reads. Every row carries a
`stream` id (which stream or task it came from; 0 for a single stream), so a
mixed batch tells an objective where each row came from.

Batches are a pure function of (seed, step): rows are reshuffled every epoch by
a seed-derived permutation (grain's index shuffle) and repeated forever, so a
run resumed at step s sees exactly the batches an uninterrupted run would have.
Each process reads only its slice of every global batch.
"""
from collections.abc import Iterator
import functools
import hashlib

import grain
import numpy as np

from plm.data import dataset
from plm.errors import UserError


def per_process(batch_size: int, process_index: int, process_count: int) -> int:
  """Rows of a global batch that one process reads; a bad split is a clear error."""
  if batch_size <= 0 or batch_size % process_count:
    raise UserError(
       f'batch_size {batch_size} must be a positive multiple of the process '
       f'count {process_count}; change `train.batch_size` in the config.')
  if not 0 <= process_index < process_count:
    raise UserError(f'process_index {process_index} not in [0, {process_count}).')
  return batch_size // process_count


class Rows(dataset.Dataset):
  """Rows of int32 arrays under any keys, plus a `stream` id per row.

  `info` holds counts about how the rows were made (pairs left out for length,
  examples skipped, ...), printed with the data line and saved in results.
  """

  def __init__(self, arrays: dict[str, np.ndarray], *, stream: int = 0,
               info: dict | None = None):
    if not arrays:
      raise UserError('Rows need at least one array')
    arrays = dict(arrays)
    n = len(next(iter(arrays.values())))
    arrays.setdefault('stream', np.full((n,), stream, np.int32))
    self.arrays = {k: np.array(v, np.int32) for k, v in arrays.items()}  # copies
    for k, v in self.arrays.items():
      if len(v) != n:
        raise UserError(f'array {k!r} has {len(v)} rows, the others {n}')
      v.flags.writeable = False  # keeps `fingerprint` true to the data
    self.info = dict(info or {})

  def __len__(self) -> int:
    return len(self.arrays['stream'])

  @property
  def keys(self) -> tuple[str, ...]:
    return tuple(sorted(self.arrays))

  @property
  def seq_len(self) -> int:
    return self.arrays['tokens'].shape[1]

  def token_counts(self, vocab_size: int) -> np.ndarray:
    """Unigram counts of the non-pad tokens, shape [vocab_size]."""
    tokens = self.arrays['tokens'][self.arrays['segment_ids'] > 0]
    if tokens.size and tokens.max() >= vocab_size:
      raise UserError(f'Token id {tokens.max()} >= vocab_size {vocab_size}: the data was '
                      'tokenized with another tokenizer; check `data.vocab_path`.')
    return np.bincount(tokens, minlength=vocab_size)

  @functools.cached_property
  def fingerprint(self) -> str:
    """Short stable hash of the arrays: did two runs see the same data?"""
    h = hashlib.sha256()
    for k in sorted(self.arrays):
      if k != 'stream':  # a stream id is where rows sit in a mix, not what they hold
        h.update(f'{k}{self.arrays[k].shape}'.encode())
        h.update(np.ascontiguousarray(self.arrays[k]).tobytes())
    return h.hexdigest()[:16]

  def with_stream(self, stream: int) -> 'Rows':
    """The same rows with every stream id set to `stream`."""
    arrays = {k: v for k, v in self.arrays.items() if k != 'stream'}
    return Rows(arrays, stream=stream, info=self.info)

  def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in self.arrays.items()}

  def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
            process_count: int = 1) -> dict[str, np.ndarray]:
    """This process's rows [batch_size // process_count, ...] of global batch `step`."""
    n = per_process(batch_size, process_index, process_count)
    if not len(self):
      raise UserError('Cannot draw batches from an empty dataset.')
    return self.take(self._order(batch_size, seed)[step][process_index * n:][:n])

  def _order(self, batch_size: int, seed: int):
    """Row indices of every global batch: reshuffled each epoch, repeated forever.

    .seed() hashes `seed`, so nearby seeds give unrelated permutations.
    """
    return grain.MapDataset.range(len(self)).seed(seed).shuffle().repeat().batch(batch_size)

  def order_fingerprint(self, batch_size: int, *, seed: int, steps: int = 100) -> str:
    """Short hash of the data order (the rows of the first `steps` global batches)."""
    order = self._order(batch_size, seed)
    rows = np.stack([np.asarray(order[step]) for step in range(steps)])
    return hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()[:16]

  def iterate_once(self, batch_size: int, *, process_index: int = 0,
                   process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """Unshuffled batches over all rows once; the last one padded with all-0 rows.

    A padding row is 0 everywhere, so every objective gives it weight 0.
    """
    n = per_process(batch_size, process_index, process_count)
    for start in range(0, len(self), batch_size):
      rows = start + process_index * n + np.arange(n)
      real = rows < len(self)
      batch = self.take(np.minimum(rows, len(self) - 1))
      yield {k: v * real.reshape((-1,) + (1,) * (v.ndim - 1)) for k, v in batch.items()}


def concatenate(parts: list[Rows], *, info: dict | None = None) -> Rows:
  """Rows of several parts, in order; every part must have the same keys."""
  if not parts:
    raise UserError('concatenate needs at least one part')
  keys = {p.keys for p in parts}
  if len(keys) != 1:
    raise UserError(f'cannot concatenate rows with different keys: {sorted(keys)}')
  return Rows({k: np.concatenate([p.arrays[k] for p in parts]) for k in parts[0].keys},
              info=info)
