"""Packs token streams into fixed-length rows of segments.

Layout (as XLM's streams of text): each document gets `eos` appended, so with
verses joined by `eos` every sentence ends with `eos`. The document is then cut
into consecutive chunks of at most `seq_len - 1` tokens, and every chunk starts
with `bos`: a chunk is `[bos, t_k, ..., t_{k+m-1}]`. Cutting is not truncation:
concatenating a document's chunks without their `bos` gives it back exactly.
Chunks fill rows next-fit, in order, so the output is the input stream in order.
"""

from collections.abc import Sequence

import numpy as np


def chunk_document(
    doc: np.ndarray, seq_len: int, bos_id: int, eos_id: int
) -> list[np.ndarray]:
  """`bos`-led chunks of `doc + [eos]`, each at most `seq_len` tokens."""
  stream = np.append(np.asarray(doc, np.int32), np.int32(eos_id))
  width = seq_len - 1
  return [np.insert(stream[i:i + width], 0, bos_id)
          for i in range(0, len(stream), width)]


def pack_documents(
    docs: Sequence[np.ndarray], seq_len: int, bos_id: int, eos_id: int
) -> dict[str, np.ndarray]:
  """Packs documents into rows; returns int32 arrays of shape [N, seq_len].

  Args:
    docs: 1-D int arrays, one per document. Empty documents are skipped.
    seq_len: row length; at least 2 (bos plus one token).
    bos_id: starts every chunk.
    eos_id: appended to every document.

  Returns:
    `tokens` (0 = padding), `segment_ids` (1, 2, ... per chunk within a row,
    0 = padding) and `positions` (0 at each chunk's bos).
  """
  if seq_len < 2:
    raise ValueError(f'seq_len must be at least 2 (bos + 1 token), got {seq_len}.')
  chunks = [c for doc in docs if len(doc)
            for c in chunk_document(doc, seq_len, bos_id, eos_id)]
  # Next-fit: (row, offset, segment id) for each chunk.
  placements, row, used, segment = [], -1, seq_len, 0
  for chunk in chunks:
    if used + len(chunk) > seq_len:
      row, used, segment = row + 1, 0, 0
    segment += 1
    placements.append((row, used, segment))
    used += len(chunk)
  shape = (row + 1, seq_len)
  out = {k: np.zeros(shape, np.int32)
         for k in ('tokens', 'segment_ids', 'positions')}
  for chunk, (r, start, segment) in zip(chunks, placements):
    span = slice(start, start + len(chunk))
    out['tokens'][r, span] = chunk
    out['segment_ids'][r, span] = segment
    out['positions'][r, span] = np.arange(len(chunk))
  return out
