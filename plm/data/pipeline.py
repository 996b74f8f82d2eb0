"""Corpus -> documents -> tokens -> packed rows (plm.data.rows.Rows).

Packed rows hold `tokens`, `segment_ids`, `positions` and `langs` (KEYS), each
[N, data.seq_len] int32; their order in training is Rows' (seed, step) order.
"""

from collections.abc import Iterator, Sequence
import glob
import os

import ml_collections
import numpy as np

from plm.data import bible
from plm.data import packing
from plm.data import rows as rows_lib
from plm.data import text
from plm.data import tokenizer as tokenizer_lib
from plm.errors import MissingFileError, UserError

# language code -> the shipped Bible read for it; 'en_web' is a second English (the World
# English Bible), a language of its own so that LASER can train the en_web -> en direction
LANGUAGE_TRANSLATIONS = {'en': 'en_kjv', 'es': 'es_rv1909', 'en_web': 'en_web'}
CORPORA = ('bible', 'textdir', 'tfds_text')
SPLITS = bible.SPLITS
KEYS = ('tokens', 'segment_ids', 'positions', 'langs')


def _check_split(split: str):
  if split not in SPLITS:
    raise UserError(f'Unknown split {split!r}; use one of {SPLITS}.')


def read_text_file(path: str) -> list[list[str]]:
  """Documents (blank-line separated) of sentences (one per line)."""
  return list(iter_text_documents(path))


def iter_text_documents(path: str) -> Iterator[list[str]]:
  """read_text_file's documents one at a time (a large file never sits in memory)."""
  if not os.path.isfile(path):
    found = sorted(os.path.basename(p) for p in
                   glob.glob(os.path.join(os.path.dirname(path), '*.txt')))
    raise MissingFileError(
       f'Missing text file {path}. The textdir corpus needs '
       '`<data.text_dir>/<lang>.<split>.txt` for every language in '
       '`data.languages` and each split (train, validation, test): UTF-8, '
       'one sentence per line, a blank line between documents. Create it, or '
       f'fix `data.text_dir` / `data.languages` in the config (found there: '
       f'{found}).')
  doc, any_docs = [], False
  for _, line in text.utf8_lines(path):
    line = line.strip()
    if line:
      doc.append(line)
    elif doc:
      yield doc
      doc, any_docs = [], True
  if doc:
    yield doc
  elif not any_docs:
    raise UserError(
       f'Text file {path} is empty. Put text in it (one sentence per line, a '
       'blank line between documents) or drop the language from '
       '`data.languages` in the config.')


def load_texts(data_config: ml_collections.ConfigDict, split: str, *,
               languages: Sequence[str] | None = None
               ) -> dict[str, list[list[str]]]:
  """Documents of sentences per language (default: `data_config.languages`)."""
  _check_split(split)
  languages = tuple(data_config.languages if languages is None else languages)
  if not languages:
    raise UserError('`data.languages` in the config is empty; list at least '
                    f'one language code, e.g. {tuple(LANGUAGE_TRANSLATIONS)}.')
  if data_config.corpus == 'bible':
    unknown = [l for l in languages if l not in LANGUAGE_TRANSLATIONS]
    if unknown:
      raise UserError(
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
    raise UserError(
       f'Unknown corpus {data_config.corpus!r}; set `data.corpus` in the '
       f'config to one of {CORPORA}.')
  for lang, docs in texts.items():
    if not docs:
      raise UserError(
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
                 languages: Sequence[str] | None = None) -> rows_lib.Rows:
  """Tokenizes and packs `split`; `langs` indexes `data_config.languages`."""
  configured = tuple(data_config.languages)
  languages = configured if languages is None else tuple(languages)
  if extra := [l for l in languages if l not in configured]:
    raise UserError(f'Languages {extra} are not in `data.languages` '
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
  dataset = rows_lib.Rows(arrays)
  if data_config.corpus == 'bible':
    _PACKED_CACHE[key] = dataset  # read-only arrays: safe to share within a process
  return dataset


_PACKED_CACHE = {}
