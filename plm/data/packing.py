"""Packs token streams into fixed-length rows of segments, densely.

Layout (as XLM's streams of text): each document gets `eos` appended, so with
verses joined by `eos` every sentence ends with `eos`. Documents then flow into
rows one after another, as one stream: a document's chunk fills whatever room
the current row has left, and the rest continues in the next row. Every chunk
starts with `bos` and is one segment (its own segment id, positions from 0), so
attention never crosses documents. Cutting is not truncation: concatenating a
document's chunks without their `bos` gives it back exactly. Only the last row
(and a row end with room for a lone `bos`) is padded.
"""

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from plm.errors import UserError


def iter_packed_rows(
    docs: Iterable[np.ndarray], seq_len: int, bos_id: int, eos_id: int
) -> Iterator[dict[str, np.ndarray]]:
  """The rows of `pack_documents`, one at a time: a corpus never has to fit in memory.

  Yields int32 arrays `tokens`, `segment_ids` and `positions`, each [seq_len].
  """
  if seq_len < 2:
    raise UserError(
       f'seq_len must be at least 2 (bos + 1 token), got {seq_len}.')
  row, used, segment = None, seq_len, 0
  for doc in docs:
    if not len(doc):
      continue
    stream = np.append(np.asarray(doc, np.int32), np.int32(eos_id))
    while len(stream):
      if seq_len - used < 2:  # no room for bos + one token
        if row is not None:
          yield row
        row = {k: np.zeros(seq_len, np.int32) for k in ('tokens', 'segment_ids', 'positions')}
        used, segment = 0, 0
      take = min(len(stream), seq_len - used - 1)
      segment += 1
      span = slice(used, used + take + 1)
      row['tokens'][span] = np.insert(stream[:take], 0, bos_id)
      row['segment_ids'][span] = segment
      row['positions'][span] = np.arange(take + 1)
      used += take + 1
      stream = stream[take:]
  if row is not None:
    yield row


def pack_documents(
    docs: Sequence[np.ndarray], seq_len: int, bos_id: int, eos_id: int
) -> dict[str, np.ndarray]:
  """Packs documents into rows; returns int32 arrays of shape [N, seq_len].

  Args:
    docs: 1-D int arrays, one per document, in order. Empty ones are skipped.
    seq_len: row length; at least 2 (bos plus one token).
    bos_id: starts every chunk.
    eos_id: appended to every document.

  Returns:
    `tokens` (0 = padding), `segment_ids` (1, 2, ... per chunk within a row,
    0 = padding) and `positions` (0 at each chunk's bos).
  """
  keys = ('tokens', 'segment_ids', 'positions')
  rows = list(iter_packed_rows(docs, seq_len, bos_id, eos_id))
  if not rows:
    return {k: np.zeros((0, seq_len), np.int32) for k in keys}
  return {k: np.stack([r[k] for r in rows]) for k in keys}


def pair_length(source_len: int, target_len: int, pseudo_target: bool = False) -> int:
  """Tokens of pack_pair's row: bos, source, eos, target, eos (and with `pseudo_target`
  the target and its eos again)."""
  return source_len + target_len + 3 + (target_len + 1 if pseudo_target else 0)


def pack_pair(source_ids, target_ids, *, max_len: int, bos_id: int, eos_id: int,
              pad_id: int = 0, restart_target_positions: bool = False,
              pseudo_target: bool = False) -> dict:
  """One example as int32 numpy arrays of length `max_len`.

  Returns tokens, token_types, valid, segment_ids (1 real, 0 pad) and
  positions (0.. on real tokens, 0 on pad). With `restart_target_positions` the
  target counts from 1 again (target token j shares source token j's position,
  as in XLM's TLM), so a monotone alignment is attention to the same position.
  With `pseudo_target` (s2s-ft's pseudo masking) the target and its eos appear
  twice, `[bos] source [eos] target [eos] target' [eos]'`, the second copy
  flagged in a `pseudo` array, token type 1 and the first copy's positions: the
  objective turns it into [MASK]s that predict their twins (masks.pseudo_seq2seq_mask).
  Raises ValueError, never truncates, when the row would exceed max_len.
  """
  source = np.asarray(source_ids, np.int32).reshape(-1)
  target = np.asarray(target_ids, np.int32).reshape(-1)
  n = pair_length(len(source), len(target), pseudo_target)
  if n > max_len:
    copies = ' + the target again with its eos (pseudo masking)' if pseudo_target else ''
    raise UserError(f'source ({len(source)} tokens) + target ({len(target)} tokens) + 3 '
                    f'special tokens{copies} = {n} > max_len={max_len}; raise '
                    'finetune.seq_len (at most model.max_len) or drop this pair')
  body = np.concatenate([[bos_id], source, [eos_id], target, [eos_id]]).astype(np.int32)
  start = len(source) + 2
  tokens = np.full(max_len, pad_id, np.int32)
  tokens[:n] = np.concatenate([body, body[start:]]) if pseudo_target else body
  token_types = np.zeros(max_len, np.int32)
  token_types[start:n] = 1
  valid = (np.arange(max_len) < n).astype(np.int32)
  positions = np.where(valid, np.arange(max_len), 0).astype(np.int32)
  if restart_target_positions:
    positions[start:len(body)] = np.arange(1, len(body) - start + 1)
  out = dict(tokens=tokens, token_types=token_types, valid=valid, segment_ids=valid.copy(),
             positions=positions)
  if pseudo_target:
    positions[len(body):n] = positions[start:len(body)]
    out['pseudo'] = ((np.arange(max_len) >= len(body)) & (valid == 1)).astype(np.int32)
  return out
