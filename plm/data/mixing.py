"""The training stream: MLM rows per language and TLM rows per direction, mixed.

Each row of a batch is drawn from one stream with probability
  (1 - data.tlm_share) * q_lang   for a language's monolingual rows,
  data.tlm_share * q_pair         for a translation direction's TLM rows,
with q ∝ p^data.language_alpha over the streams' token shares (plm/data/sampling.py).
tlm_share = 0 is MLM (or CLM) alone; 0.5 is XLM's MLM+TLM; 1 is TLM alone. Every
row has the same shape, so the step compiles once whatever the mix.

Batches stay a pure function of (seed, step): slot k = step * batch_size + j picks
its stream with a generator keyed by (seed, step), and takes element k of that
stream's order, an endless sequence of per-epoch permutations keyed by (seed,
stream, epoch). No state is carried between steps, so a resumed run draws
exactly the batches an uninterrupted one would.
"""
import functools
import hashlib

import ml_collections
import numpy as np

from plm.data import dataset
from plm.data import parallel
from plm.data import pipeline
from plm.data import rows as rows_lib
from plm.data import sampling
from plm.data import sentences
from plm.errors import UserError


class MixedDataset(dataset.Dataset):
  """Several Rows (streams) sampled per row; Rows' batch API. Row `stream` = stream index."""

  def __init__(self, streams: dict[str, rows_lib.Rows], weights: dict[str, float],
               languages=()):
    self.names = tuple(streams)
    self.streams = [streams[n].with_stream(i) for i, n in enumerate(self.names)]
    if len({s.keys for s in self.streams}) != 1:
      raise UserError(f'streams {self.names} have different keys: '
                      f'{[s.keys for s in self.streams]}')
    self.weights = np.array([weights[n] for n in self.names], np.float64)
    if np.any(self.weights < 0) or not self.weights.sum() > 0:
      raise UserError(f'stream weights {dict(weights)} must be >= 0 and not all 0')
    self.weights /= self.weights.sum()
    self.languages = tuple(languages)
    shapes = {k: {s.arrays[k].shape[1:] for s in self.streams} for k in self.streams[0].keys}
    if any(len(v) > 1 for v in shapes.values()):
      raise UserError(f'all streams must have rows of one shape per key (data.seq_len): {shapes}')

  def __len__(self) -> int:
    return sum(len(s) for s in self.streams)

  @property
  def seq_len(self) -> int:
    return self.streams[0].seq_len

  def token_counts(self, vocab_size: int) -> np.ndarray:
    return sum(s.token_counts(vocab_size) for s in self.streams)

  @functools.cached_property
  def fingerprint(self) -> str:
    """Short stable hash of every stream's arrays and the mixing weights."""
    h = hashlib.sha256()
    for name, stream, w in zip(self.names, self.streams, self.weights):
      h.update(f'{name}:{stream.fingerprint}:{w:.12g};'.encode())
    return h.hexdigest()[:16]

  @property
  def summary(self) -> str:
    """One line: each stream's rows and sampling probability."""
    parts = []
    for name, stream, w in zip(self.names, self.streams, self.weights):
      parts.append(f'{name} {len(stream)} rows p={w:.3f}')
      i = stream.info
      if 'pairs' in i:  # TLM pairs
        parts[-1] += (f" ({i['pairs']} pairs; left out whole: {i['too_long']} longer than "
                      f"data.seq_len, {i['empty']} with an empty side)")
      elif 'sentences' in i:  # one sentence a row
        parts[-1] += (f" (left out whole: {i['too_long']} sentences longer than data.seq_len, "
                      f"{i['empty']} empty)")
    return ', '.join(parts)

  def order(self, step: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(stream index, row index) of every slot of global batch `step`."""
    u = np.random.default_rng([seed, step]).random(batch_size)
    stream = np.minimum(np.searchsorted(np.cumsum(self.weights), u, side='right'),
                        len(self.streams) - 1)
    stream = np.where(self.weights[stream] > 0, stream, np.argmax(self.weights))  # float edge
    slots = step * batch_size + np.arange(batch_size)
    rows = np.empty(batch_size, np.int64)
    for s in np.unique(stream):
      here = stream == s
      epoch, pos = np.divmod(slots[here], len(self.streams[s]))
      n = len(self.streams[s])
      rows[here] = [_permutation(seed, int(s), int(e), n)[p] for e, p in zip(epoch, pos)]
    return stream, rows

  def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
            process_count: int = 1) -> dict[str, np.ndarray]:
    """This process's rows [batch_size // process_count, L] of batch `step`."""
    n = rows_lib.per_process(batch_size, process_index, process_count)
    stream, rows = self.order(step, batch_size, seed)
    mine = slice(process_index * n, (process_index + 1) * n)
    stream, rows = stream[mine], rows[mine]
    first = self.streams[0].arrays
    out = {k: np.zeros((n,) + v.shape[1:], np.int32) for k, v in first.items()}
    for s in np.unique(stream):
      here = stream == s
      for k, v in self.streams[s].arrays.items():
        out[k][here] = v[rows[here]]
    return out

  def order_fingerprint(self, batch_size: int, *, seed: int, steps: int = 100) -> str:
    """Short hash of the data order (stream and row of every slot of the first batches)."""
    h = hashlib.sha256()
    for step in range(steps):
      for a in self.order(step, batch_size, seed):
        h.update(a.astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def stream_weights(sizes: dict[str, float], tlm_sizes: dict[str, float], alpha: float,
                   tlm_share: float) -> dict[str, float]:
  """Sampling probability of each stream: (1 - tlm_share) * q_lang, tlm_share * q_pair."""
  if not 0 <= tlm_share <= 1:
    raise UserError(f'data.tlm_share={tlm_share} must be in [0, 1] (the share of rows drawn '
                    'from parallel data; 0 = MLM alone, 0.5 = MLM+TLM)')
  if tlm_share > 0 and not tlm_sizes:
    raise UserError(f'data.tlm_share={tlm_share} but data.tlm_pairs is empty; list the '
                    "translation pairs, e.g. --config.data.tlm_pairs=\"('en-es',)\"")
  weights = {}
  for names, share, table in ((list(sizes), 1 - tlm_share, sizes),
                              (list(tlm_sizes), tlm_share, tlm_sizes)):
    if names and share > 0:
      q = sampling.language_probs([table[n] for n in names], alpha)
      weights.update({n: share * q_n for n, q_n in zip(names, q)})
  return weights


@functools.lru_cache(maxsize=64)
def _permutation(seed: int, stream: int, epoch: int, n: int) -> np.ndarray:
  """Stream `stream`'s row order in `epoch`: each row once, reshuffled every epoch."""
  return dataset.permutation((seed, stream, epoch), n)


ROWS = ('packed', 'sentences')


def monolingual_rows(data_config: ml_collections.ConfigDict, tokenizer, split: str,
                     lang: str) -> rows_lib.Rows:
  """One language's rows of `split` in the data.rows layout."""
  if data_config.rows == 'sentences':
    return sentences.sentence_rows(data_config, tokenizer, split, lang, data_config.seq_len)
  if data_config.rows != 'packed':
    raise UserError(f'data.rows={data_config.rows!r} is unknown; use one of {ROWS}')
  return pipeline.make_dataset(data_config, tokenizer, split, languages=(lang,))


def make_train_dataset(data_config: ml_collections.ConfigDict, tokenizer,
                       split: str = 'train') -> MixedDataset:
  """The training rows: monolingual per language, plus TLM rows when tlm_share > 0."""
  languages = tuple(data_config.languages)
  tlm_share = float(data_config.tlm_share)
  if tlm_share and data_config.rows != 'packed':
    raise UserError(f'data.tlm_share={tlm_share} needs data.rows=packed (TLM pairs are packed '
                    f'rows); it is {data_config.rows!r}')
  mono = {lang: monolingual_rows(data_config, tokenizer, split, lang)
          for lang in languages} if tlm_share < 1 else {}
  tlm = {}
  if tlm_share > 0:
    for src, tgt in parallel.parse_pairs(data_config):
      tlm[f'{src}-{tgt}'] = parallel.make_tlm_dataset(data_config, tokenizer, split, src, tgt)
  tokens = lambda ds: float(np.sum(ds.arrays['segment_ids'] > 0))  # p_i: share of tokens
  weights = stream_weights({n: tokens(d) for n, d in mono.items()},
                           {n: tokens(d) for n, d in tlm.items()},
                           data_config.language_alpha, tlm_share)
  return MixedDataset({**mono, **tlm}, weights, languages)


def heldout_tlm_sets(data_config: ml_collections.ConfigDict, tokenizer, split: str
                     ) -> dict[str, rows_lib.Rows]:
  """TLM rows of `split` per direction ('en-es': ...) when the run trains TLM, else none."""
  if not data_config.tlm_share:
    return {}
  return {f'{src}-{tgt}': parallel.make_tlm_dataset(data_config, tokenizer, split, src, tgt)
          for src, tgt in parallel.parse_pairs(data_config)}
