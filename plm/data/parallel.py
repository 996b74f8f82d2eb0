"""TLM rows (XLM's translation language modelling) from parallel sentence pairs.

A pair is one stream, `[bos] source [eos] [bos] target [eos]`: positions
restart at 0 at the target's bos, `langs` is the source language on the source
half and the target language on the target half, and the whole pair is ONE
segment, so a masked word can attend to its translation (masks.packed_mask).
Pairs are packed densely, several per row, each its own segment id, so
attention never crosses pairs. A pair is never cut: one longer than
`data.seq_len` is left out whole and counted (XLM drops long pairs too), and
the count is printed with the data line; raise `data.seq_len` to keep them.

Parallel data (`data.tlm_pairs`, e.g. ('en-es',), each used in both directions):
- `data.parallel_dir` = '': the shipped Bible's aligned verses (KJV and Reina-Valera
  1909), split by chapter like the monolingual corpus.
- otherwise files in the WMT/OPUS layout, one sentence per line, line i of one
  file the translation of line i of the other, UTF-8:
      <parallel_dir>/<a>-<b>.<split>.<a>   <parallel_dir>/<a>-<b>.<split>.<b>
  for split in train, validation, test (`en-es.train.en` + `en-es.train.es`;
  `es-en.*` serves the same pair). Pairs with an empty side are left out and counted.
"""
from collections.abc import Sequence
import glob
import os

import ml_collections
import numpy as np

from plm.data import bible_tasks
from plm.data import pipeline
from plm.data import rows as rows_lib
from plm.data import text
from plm.errors import MissingFileError, UserError


def parse_pairs(data_config: ml_collections.ConfigDict) -> list[tuple[str, str]]:
  """`data.tlm_pairs` as (source, target) language pairs, both directions of each."""
  known = tuple(data_config.languages)
  out = []
  for pair in data_config.tlm_pairs:
    parts = pair.split('-')
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
      raise UserError(f"data.tlm_pairs entry {pair!r}: write a pair of two languages as "
                      "'en-es'")
    if unknown := [l for l in parts if l not in known]:
      raise UserError(f'data.tlm_pairs entry {pair!r}: unknown language(s) {unknown}; the '
                      f'known ones are data.languages={list(known)} (add the language there '
                      'or fix the pair)')
    for direction in (tuple(parts), tuple(parts[::-1])):
      if direction not in out:
        out.append(direction)
  return out


def read_parallel_files(parallel_dir: str, src: str, tgt: str, split: str
                        ) -> list[tuple[str, str]]:
  """(source, target) sentence pairs of `split` from the `<a>-<b>.<split>.<lang>` files."""
  parallel_dir = os.path.expanduser(parallel_dir)
  for a, b in ((src, tgt), (tgt, src)):
    paths = {l: os.path.join(parallel_dir, f'{a}-{b}.{split}.{l}') for l in (src, tgt)}
    if all(os.path.isfile(p) for p in paths.values()):
      break
  else:
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(parallel_dir, '*-*.*.*')))
    raise MissingFileError(
       f'No {src}-{tgt} parallel files for split {split!r} in data.parallel_dir='
       f'{parallel_dir!r}: expected {src}-{tgt}.{split}.{src} and {src}-{tgt}.{split}.{tgt} '
       f'(or {tgt}-{src}.{split}.*), UTF-8, one sentence per line, line i of one file the '
       f'translation of line i of the other (found there: {found}). Create them, or fix '
       'data.parallel_dir / data.tlm_pairs in the config.')
  lines = {l: [x.strip() for x in text.read_lines(p)] for l, p in paths.items()}
  if len(lines[src]) != len(lines[tgt]):
    raise UserError(
       f'{paths[src]} has {len(lines[src])} lines but {paths[tgt]} has {len(lines[tgt])}: '
       'parallel files must be line-aligned (line i of one is the translation of line i of '
       'the other); fix the files so that their line counts match.')
  return list(zip(lines[src], lines[tgt]))


def load_pairs(data_config: ml_collections.ConfigDict, src: str, tgt: str, split: str
               ) -> list[tuple[str, str]]:
  """(source, target) sentence pairs: the Bible's verses, or `data.parallel_dir` files."""
  pipeline._check_split(split)  # pylint: disable=protected-access
  if data_config.parallel_dir:
    return read_parallel_files(data_config.parallel_dir, src, tgt, split)
  translations = pipeline.LANGUAGE_TRANSLATIONS
  if unknown := [l for l in (src, tgt) if l not in translations]:
    raise UserError(f'The shipped Bible has no {unknown} translation; known languages: '
                    f'{sorted(translations)}. Set data.parallel_dir to your parallel files '
                    'or fix data.tlm_pairs.')
  data_dir = os.path.expanduser(data_config.tfds_dir)
  return bible_tasks.parallel_verses([translations[src], translations[tgt]], split, data_dir)


def pack_pairs(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], seq_len: int,
               bos_id: int, eos_id: int, src_lang: int, tgt_lang: int
               ) -> tuple[dict[str, np.ndarray], int]:
  """Packs token-id pairs into TLM rows, in order; returns (arrays [N, seq_len], skipped).

  Example, seq_len 12, pairs ([7, 8], [9]) and ([5], [6]), langs 0 -> 1 (b = bos,
  e = eos). The first pair takes 7 slots; the second needs 6 of the 5 left, so it
  opens a new row:
    row 0: tokens      b 7 8 e b 9 e 0 0 0 0 0    row 1: b 5 e b 6 e 0 0 0 0 0 0
           positions   0 1 2 3 0 1 2 0 0 0 0 0           0 1 2 0 1 2 0 0 0 0 0 0
           segment_ids 1 1 1 1 1 1 1 0 0 0 0 0           1 1 1 1 1 1 0 0 0 0 0 0
           langs       0 0 0 0 1 1 1 0 0 0 0 0           0 0 0 1 1 1 0 0 0 0 0 0
  A pair longer than seq_len (with its 4 specials) is skipped whole and counted.
  """
  placements, row, used, segment, skipped = [], -1, seq_len, 0, 0
  for src, tgt in pairs:
    src = [bos_id, *src, eos_id]
    tgt = [bos_id, *tgt, eos_id]
    if len(src) + len(tgt) > seq_len:
      skipped += 1
      continue
    if used + len(src) + len(tgt) > seq_len:
      row, used, segment = row + 1, 0, 0
    segment += 1
    placements.append((row, used, segment, src, tgt))
    used += len(src) + len(tgt)
  out = {k: np.zeros((row + 1, seq_len), np.int32) for k in pipeline.KEYS}
  for r, start, segment, src, tgt in placements:
    mid, end = start + len(src), start + len(src) + len(tgt)
    out['tokens'][r, start:end] = src + tgt
    out['segment_ids'][r, start:end] = segment
    out['positions'][r, start:mid] = np.arange(len(src))
    out['positions'][r, mid:end] = np.arange(len(tgt))
    out['langs'][r, start:mid] = src_lang
    out['langs'][r, mid:end] = tgt_lang
  return out, skipped


def encode_pairs(data_config: ml_collections.ConfigDict, tokenizer, src: str, tgt: str,
                 split: str) -> tuple[list[tuple[list[int], list[int]]], int]:
  """Token ids of the (src, tgt) pairs with text on both sides, and how many had an empty side.

  The shipped Bible's ids are cached per unordered pair: the two directions share them.
  """
  key = (tokenizer.fingerprint, os.path.expanduser(data_config.tfds_dir), split,
         *sorted((src, tgt)))
  if data_config.parallel_dir or key not in _ENCODED:
    a, b = sorted((src, tgt))
    loaded = load_pairs(data_config, a, b, split)
    texts = [(x, y) for x, y in loaded if x and y]
    ids = list(zip(tokenizer.encode([x for x, _ in texts]),
                   tokenizer.encode([y for _, y in texts])))
    if data_config.parallel_dir:
      return (ids if src == a else [(y, x) for x, y in ids]), len(loaded) - len(texts)
    _ENCODED[key] = ids, len(loaded) - len(texts)
  ids, empty = _ENCODED[key]
  return (ids if src < tgt else [(y, x) for x, y in ids]), empty


def make_tlm_dataset(data_config: ml_collections.ConfigDict, tokenizer, split: str,
                     src: str, tgt: str) -> rows_lib.Rows:
  """TLM rows of the (src, tgt) direction of `split`; langs index data.languages."""
  configured = tuple(data_config.languages)
  key = (tokenizer.fingerprint, os.path.expanduser(data_config.tfds_dir), data_config.seq_len,
         configured, split, src, tgt)
  if not data_config.parallel_dir and key in _PACKED:  # the shipped text never changes
    return _PACKED[key]
  ids, empty = encode_pairs(data_config, tokenizer, src, tgt, split)
  arrays, too_long = pack_pairs(ids, data_config.seq_len, tokenizer.bos_id, tokenizer.eos_id,
                                configured.index(src), configured.index(tgt))
  if not len(arrays['tokens']):
    raise UserError(
       f'No {src}-{tgt} pair of the {split} split fits in data.seq_len={data_config.seq_len} '
       f'({too_long} too long, {empty} with an empty side, of {len(ids) + empty}); raise '
       'data.seq_len or check the parallel data.')
  dataset = rows_lib.Rows(arrays, info=dict(pairs=len(ids) - too_long, too_long=too_long,
                                             empty=empty))
  if not data_config.parallel_dir:
    _PACKED[key] = dataset  # read-only arrays: safe to share within a process
  return dataset


_ENCODED, _PACKED = {}, {}
