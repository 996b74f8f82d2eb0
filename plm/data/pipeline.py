"""Corpus -> tokens -> packed rows -> deterministic batches.

Batches are a pure function of (seed, step): rows are reshuffled every epoch by
a seed-derived permutation (grain's index shuffle) and repeated forever, so a
run resumed at step s sees exactly the batches an uninterrupted run would have.
"""

from collections.abc import Iterator, Sequence
import functools
import glob
import hashlib
import os

import grain
import ml_collections
import numpy as np

from plm.data import bible
from plm.data import packing
from plm.data import tokenizer as tokenizer_lib

LANGUAGE_TRANSLATIONS = {'en': 'en_kjv', 'es': 'es_rv1909'}
CORPORA = ('bible', 'textdir', 'tfds_text')
SPLITS = bible.SPLITS
KEYS = ('tokens', 'segment_ids', 'positions', 'langs')


class PackedDataset:
  """Packed rows of several languages: int32 arrays [N, L] under KEYS."""

  def __init__(self, arrays: dict[str, np.ndarray], languages: Sequence[str]):
    self.arrays = {k: np.array(arrays[k], np.int32) for k in KEYS}  # Copies.
    for v in self.arrays.values():
      v.flags.writeable = False  # Keeps `fingerprint` true to the data.
    self.languages = tuple(languages)

  def __len__(self) -> int:
    return len(self.arrays['tokens'])

  @property
  def seq_len(self) -> int:
    return self.arrays['tokens'].shape[1]

  def token_counts(self, vocab_size: int) -> np.ndarray:
    """Unigram counts of non-pad tokens, shape [vocab_size]."""
    tokens = self.arrays['tokens'][self.arrays['segment_ids'] > 0]
    if tokens.size and tokens.max() >= vocab_size:
      raise ValueError(
          f'Token id {tokens.max()} >= vocab_size {vocab_size}: the data was '
          'tokenized with another tokenizer; check `data.vocab_path`.')
    return np.bincount(tokens, minlength=vocab_size)

  @functools.cached_property
  def fingerprint(self) -> str:
    """Short stable hash of the arrays: did two runs see the same data?"""
    h = hashlib.sha256()
    for k in KEYS:
      h.update(f'{k}{self.arrays[k].shape}'.encode())
      h.update(np.ascontiguousarray(self.arrays[k]).tobytes())
    return h.hexdigest()[:16]

  def batch(self, step: int, batch_size: int, *, seed: int,
            process_index: int = 0, process_count: int = 1
            ) -> dict[str, np.ndarray]:
    """This process's rows [batch_size // process_count, L] of batch `step`."""
    per_process = _per_process(batch_size, process_index, process_count)
    if not len(self):
      raise ValueError('Cannot draw batches from an empty dataset.')
    rows = self._order(batch_size, seed)[step][process_index * per_process:][:per_process]
    return {k: v[rows] for k, v in self.arrays.items()}

  def _order(self, batch_size: int, seed: int):
    """Row indices of every global batch: reshuffled each epoch, repeated forever.

    .seed() hashes `seed`, so nearby seeds give unrelated permutations.
    """
    return (grain.MapDataset.range(len(self)).seed(seed).shuffle().repeat()
            .batch(batch_size))

  def order_fingerprint(self, batch_size: int, *, seed: int, steps: int = 100) -> str:
    """Short hash of the data order (the rows of the first `steps` global batches)."""
    order = self._order(batch_size, seed)
    rows = np.stack([np.asarray(order[step]) for step in range(steps)])
    return hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()[:16]

  def iterate_once(self, batch_size: int, *, process_index: int = 0,
                   process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """Unshuffled batches over all rows once; the last one padded with 0s."""
    per_process = _per_process(batch_size, process_index, process_count)
    for start in range(0, len(self), batch_size):
      rows = start + process_index * per_process + np.arange(per_process)
      valid = (rows < len(self))[:, None]
      rows = np.minimum(rows, len(self) - 1)
      yield {k: v[rows] * valid for k, v in self.arrays.items()}


def _per_process(batch_size: int, process_index: int,
                 process_count: int) -> int:
  if batch_size <= 0 or batch_size % process_count:
    raise ValueError(
        f'batch_size {batch_size} must be a positive multiple of the process '
        f'count {process_count}; change `train.batch_size` in the config.')
  if not 0 <= process_index < process_count:
    raise ValueError(
        f'process_index {process_index} not in [0, {process_count}).')
  return batch_size // process_count


def _check_split(split: str):
  if split not in SPLITS:
    raise ValueError(f'Unknown split {split!r}; use one of {SPLITS}.')


def read_text_file(path: str) -> list[list[str]]:
  """Documents (blank-line separated) of sentences (one per line)."""
  if not os.path.isfile(path):
    found = sorted(os.path.basename(p) for p in
                   glob.glob(os.path.join(os.path.dirname(path), '*.txt')))
    raise FileNotFoundError(
        f'Missing text file {path}. The textdir corpus needs '
        '`<data.text_dir>/<lang>.<split>.txt` for every language in '
        '`data.languages` and each split (train, validation, test): UTF-8, '
        'one sentence per line, a blank line between documents. Create it, or '
        f'fix `data.text_dir` / `data.languages` in the config (found there: '
        f'{found}).')
  docs, doc = [], []
  with open(path, 'rb') as f:
    for lineno, raw in enumerate(f, start=1):
      try:
        line = raw.decode('utf-8-sig' if lineno == 1 else 'utf-8').strip()
      except UnicodeDecodeError as e:
        raise ValueError(
            f'{path}, line {lineno}: not valid UTF-8 ({e.reason} at byte '
            f'{e.start}). Re-encode the file as UTF-8, e.g. '
            '`iconv -f LATIN1 -t UTF-8`.') from None
      if line:
        doc.append(line)
      elif doc:
        docs.append(doc)
        doc = []
  if doc:
    docs.append(doc)
  if not docs:
    raise ValueError(
        f'Text file {path} is empty. Put text in it (one sentence per line, a '
        'blank line between documents) or drop the language from '
        '`data.languages` in the config.')
  return docs


def load_texts(data_config: ml_collections.ConfigDict, split: str, *,
               languages: Sequence[str] | None = None
               ) -> dict[str, list[list[str]]]:
  """Documents of sentences per language (default: `data_config.languages`)."""
  _check_split(split)
  languages = tuple(data_config.languages if languages is None else languages)
  if not languages:
    raise ValueError('`data.languages` in the config is empty; list at least '
                     f'one language code, e.g. {tuple(LANGUAGE_TRANSLATIONS)}.')
  if data_config.corpus == 'bible':
    unknown = [l for l in languages if l not in LANGUAGE_TRANSLATIONS]
    if unknown:
      raise ValueError(
          f'Unknown language code(s) {unknown} for the bible corpus; known: '
          f'{sorted(LANGUAGE_TRANSLATIONS)}. Fix `data.languages` in the '
          'config, or use corpus=textdir or tfds_text for other languages.')
    data_dir = os.path.expanduser(data_config.tfds_dir)
    texts = {l: bible.load_documents(LANGUAGE_TRANSLATIONS[l], split, data_dir)
             for l in languages}
  elif data_config.corpus == 'textdir':
    text_dir = os.path.expanduser(data_config.text_dir)
    texts = {l: read_text_file(os.path.join(text_dir, f'{l}.{split}.txt'))
             for l in languages}
  elif data_config.corpus == 'tfds_text':  # built once into data.tfds_dir (array_record)
    from plm.data.builders import monolingual  # pylint: disable=g-import-not-at-top
    data_dir = os.path.expanduser(data_config.tfds_dir)
    texts = {l: monolingual.load_documents(
        monolingual.config(os.path.expanduser(data_config.text_dir), l,
                           data_config.held_out_permille), split, data_dir)
             for l in languages}
  else:
    raise ValueError(
        f'Unknown corpus {data_config.corpus!r}; set `data.corpus` in the '
        f'config to one of {CORPORA}.')
  for lang, docs in texts.items():
    if not docs:
      raise ValueError(
          f'The {data_config.corpus} corpus has no {split} text for {lang!r}; '
          'fix `data.corpus` / `data.languages` in the config.')
  return texts


def encode_documents(tokenizer: tokenizer_lib.Tokenizer,
                     docs: list[list[str]]) -> list[np.ndarray]:
  """One token array per document, its sentences joined by eos."""
  ids = iter(tokenizer.encode([s for doc in docs for s in doc]))  # One call.
  eos = [tokenizer.eos_id]
  out = []
  for doc in docs:
    joined = [t for _ in doc for t in next(ids) + eos][:-1]
    out.append(np.asarray(joined, np.int32))
  return out


def make_dataset(data_config: ml_collections.ConfigDict,
                 tokenizer: tokenizer_lib.Tokenizer, split: str, *,
                 languages: Sequence[str] | None = None) -> PackedDataset:
  """Tokenizes and packs `split`; `langs` indexes `data_config.languages`."""
  configured = tuple(data_config.languages)
  languages = configured if languages is None else tuple(languages)
  if extra := [l for l in languages if l not in configured]:
    raise ValueError(f'Languages {extra} are not in `data.languages` '
                     f'{configured}; add them there in the config.')
  key = (tokenizer.fingerprint, data_config.corpus, os.path.expanduser(data_config.tfds_dir),
         data_config.seq_len, configured, split, languages)
  if data_config.corpus == 'bible' and key in _PACKED_CACHE:  # shipped text never changes
    return _PACKED_CACHE[key]
  texts = load_texts(data_config, split, languages=languages)
  parts = []
  for lang in languages:
    packed = packing.pack_documents(
        encode_documents(tokenizer, texts[lang]), data_config.seq_len,
        tokenizer.bos_id, tokenizer.eos_id)
    packed['langs'] = np.where(packed['segment_ids'] > 0,
                               configured.index(lang), 0).astype(np.int32)
    parts.append(packed)
  arrays = {k: np.concatenate([p[k] for p in parts]) for k in KEYS}
  dataset = PackedDataset(arrays, configured)
  if data_config.corpus == 'bible':
    _PACKED_CACHE[key] = dataset  # read-only arrays: safe to share within a process
  return dataset


_PACKED_CACHE = {}
