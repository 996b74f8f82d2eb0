"""One sentence (or one translation pair) per row: the rows MASS and translation read.

Unlike packed rows, a row never holds more than one sentence, so a span's
positions are the sentence's own indices and a row's decoder target is its
whole target side. A sentence (or pair) longer than its row is left out whole
and counted in `Rows.info['too_long']`, never cut; one with no tokens is
counted in `info['empty']`.

Sentence rows (`sentence_rows`), e.g. seq_len 6, the sentence [7, 8, 9] in
language 1 of data.languages (b = bos, e = eos, pad = 0):
    tokens       b 7 8 9 e 0
    segment_ids  1 1 1 1 1 0
    positions    0 1 2 3 4 0
    langs        1 1 1 1 1 0

Pair rows (`pair_rows`, `translation_rows`) hold the same four arrays per side
under `src_` and `tgt_`, e.g. src_len 4, tgt_len 5, the pair ([7], [8, 9]),
languages 0 -> 1:
    src_tokens b 7 e 0      src_segment_ids 1 1 1 0   src_positions 0 1 2 0  src_langs 0 0 0 0
    tgt_tokens b 8 9 e 0    tgt_segment_ids 1 1 1 1 0 tgt_positions 0 1 2 3 0 tgt_langs 1 1 1 1 0

Unsupervised MT (`disjoint_sentence_rows`) reads sentence rows of two languages
from disjoint chapters: a fixed hash of 'book chapter' (`unit_language`) gives
each chapter of the split to one language only, so no verse is seen in both.
"""
from collections.abc import Sequence
import hashlib
import os

import ml_collections
import numpy as np

from plm.data import bible
from plm.data import parallel
from plm.data import pipeline
from plm.data import rows as rows_lib
from plm.errors import UserError

KEYS = pipeline.KEYS  # tokens, segment_ids, positions, langs
PAIR_KEYS = tuple(f'{side}_{k}' for side in ('src', 'tgt') for k in KEYS)


def _lay_out(ids_list: Sequence[Sequence[int]], length: int, lang: int, *, bos_id: int,
             eos_id: int, pad_id: int) -> dict[str, np.ndarray]:
  """`[bos] ids [eos] pad...` rows, one per entry (all must fit: the callers check)."""
  out = {k: np.zeros((len(ids_list), length), np.int32) for k in KEYS}
  out['tokens'][:] = pad_id
  for r, ids in enumerate(ids_list):
    n = len(ids) + 2
    out['tokens'][r, :n] = [bos_id, *ids, eos_id]
    out['segment_ids'][r, :n] = 1
    out['positions'][r, :n] = np.arange(n)
    out['langs'][r, :n] = lang
  return out


def _rows_of(tokenizer, texts: Sequence[str], seq_len: int, lang_id: int, what: str
             ) -> rows_lib.Rows:
  """One `[bos] ids [eos]` row per text that fits `seq_len`; the rest counted, never cut."""
  encoded = tokenizer.encode(list(texts))
  kept = [ids for ids in encoded if 0 < len(ids) <= seq_len - 2]
  empty = sum(not ids for ids in encoded)
  too_long = len(encoded) - len(kept) - empty
  if not kept:
    raise UserError(
       f'No {what} fits in {seq_len} tokens ({too_long} too long, {empty} empty, of '
       f'{len(encoded)}); raise the row length or check the corpus.')
  arrays = _lay_out(kept, seq_len, lang_id, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                    pad_id=tokenizer.pad_id)
  return rows_lib.Rows(arrays, info=dict(sentences=len(kept), too_long=too_long, empty=empty))


def _language_id(data_config: ml_collections.ConfigDict, language: str) -> int:
  configured = tuple(data_config.languages)
  if language not in configured:
    raise UserError(f'Language {language!r} is not in data.languages={list(configured)}; add '
                    'it there in the config.')
  return configured.index(language)


def sentence_rows(data_config: ml_collections.ConfigDict, tokenizer, split: str, language: str,
                  seq_len: int) -> rows_lib.Rows:
  """One sentence (a Bible verse, a line of a text file) of `language` per row.

  info: sentences (rows made), too_long (longer than seq_len with bos and eos:
  left out whole), empty (no tokens).
  """
  if seq_len < 3:
    raise UserError(f'seq_len={seq_len} must be at least 3 (bos, one token, eos)')
  lang_id = _language_id(data_config, language)  # before reading: an unknown one is named
  docs = pipeline.load_texts(data_config, split, languages=(language,))[language]
  return _rows_of(tokenizer, [s for doc in docs for s in doc], seq_len, lang_id,
                  f'{language} sentence of the {split} split')


def pair_rows(pairs_ids: Sequence[tuple[Sequence[int], Sequence[int]]], *, src_lang: int,
              tgt_lang: int, src_len: int, tgt_len: int, bos_id: int, eos_id: int,
              pad_id: int) -> rows_lib.Rows:
  """One (source ids, target ids) pair per row, each side `[bos] ids [eos] pad...`.

  A pair with a side longer than its row (src_len / tgt_len, with bos and eos)
  is left out whole. info: pairs (rows made), too_long, empty (a side without
  tokens). May hold zero rows; `translation_rows` makes that an error.
  """
  for name, length in (('src_len', src_len), ('tgt_len', tgt_len)):
    if length < 3:
      raise UserError(f'{name}={length} must be at least 3 (bos, one token, eos)')
  empty = sum(not (len(s) and len(t)) for s, t in pairs_ids)
  kept = [(s, t) for s, t in pairs_ids if len(s) and len(t)]
  fits = [(s, t) for s, t in kept if len(s) + 2 <= src_len and len(t) + 2 <= tgt_len]
  arrays = {}
  for side, ids, lang, length in (('src', [s for s, _ in fits], src_lang, src_len),
                                  ('tgt', [t for _, t in fits], tgt_lang, tgt_len)):
    laid = _lay_out(ids, length, lang, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id)
    arrays.update({f'{side}_{k}': v for k, v in laid.items()})
  return rows_lib.Rows(arrays, info=dict(pairs=len(fits), too_long=len(kept) - len(fits),
                                          empty=empty))


def translation_rows(data_config: ml_collections.ConfigDict, tokenizer, split: str, src: str,
                     tgt: str, src_len: int, tgt_len: int) -> rows_lib.Rows:
  """Pair rows of the src -> tgt direction: the Bible's aligned verses, or the
  `data.parallel_dir` files (plm.data.parallel.load_pairs); langs index data.languages.

  info['empty'] also counts pairs with an empty side in the text.
  """
  src_lang, tgt_lang = _language_id(data_config, src), _language_id(data_config, tgt)
  ids, empty_text = parallel.encode_pairs(data_config, tokenizer, src, tgt, split)
  rows = pair_rows(ids, src_lang=src_lang, tgt_lang=tgt_lang, src_len=src_len, tgt_len=tgt_len,
                   bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id)
  rows.info['empty'] += empty_text
  if not len(rows):
    raise UserError(
       f'No {src}-{tgt} pair of the {split} split fits in {src_len} source / {tgt_len} target '
       f'tokens ({rows.info["too_long"]} too long, {rows.info["empty"]} with an empty side); '
       'raise the row lengths or check the parallel data.')
  return rows


def unit_language(unit: str, languages: Sequence[str]) -> str:
  """The one of two languages that keeps `unit` (a Bible chapter 'Genesis 1', or
  'document 12' of another corpus) in `disjoint_sentences`.

  A fixed hash (sha256 of 'unsupervised-mt|<unit>', lowest bit) of the unit
  alone, over the two languages sorted: stable across runs, machines and the
  order the languages are given in (en->es and es->en split alike), and
  independent of bible.chapter_split's crc32 (so each split is halved alike).
  """
  if len(languages) != 2 or languages[0] == languages[1]:
    raise UserError(f'unit_language needs two distinct languages, got {list(languages)}')
  digest = hashlib.sha256(f'unsupervised-mt|{unit}'.encode('utf-8')).digest()
  return sorted(languages)[digest[-1] & 1]


def disjoint_sentences(data_config: ml_collections.ConfigDict, split: str,
                       languages: Sequence[str]) -> dict[str, list[tuple[str, str, str]]]:
  """(unit, reference, sentence) of each of two languages, from DISJOINT units of `split`.

  Unsupervised MT must see no parallel signal: each unit (a Bible chapter; a
  document, by its index, of a textdir/tfds_text corpus) is kept in the one
  language `unit_language` picks and dropped from the other, so no verse (no
  chapter) has both its translations in training. About half the units go to
  each language. References are the Bible's 'Genesis 1:1' (plm.data.bible's
  load_verses), or 'document d sentence s' for other corpora.
  """
  languages = tuple(languages)
  if len(languages) != 2 or languages[0] == languages[1]:
    raise UserError(f'disjoint_sentences needs two distinct languages, got {list(languages)}')
  for lang in languages:
    _language_id(data_config, lang)
  out = {}
  for lang in languages:
    if data_config.corpus == 'bible':
      pipeline._check_split(split)  # pylint: disable=protected-access
      if lang not in pipeline.LANGUAGE_TRANSLATIONS:
        raise UserError(f'The shipped Bible has no {lang!r} translation; known languages: '
                        f'{sorted(pipeline.LANGUAGE_TRANSLATIONS)}. Fix data.languages / '
                        'mt.source / mt.target, or use corpus=textdir.')
      verses = bible.load_verses(pipeline.LANGUAGE_TRANSLATIONS[lang], split,
                                 os.path.expanduser(data_config.tfds_dir))
      units = []
      for ref, sentence in verses:
        book, chapter, _ = bible.parse_reference(ref)
        units.append((f'{book} {chapter}', ref, sentence))
    else:  # one document per unit; its index is the same in both languages' files
      docs = pipeline.load_texts(data_config, split, languages=(lang,))[lang]
      units = [(f'document {d}', f'document {d} sentence {s}', sentence)
               for d, doc in enumerate(docs) for s, sentence in enumerate(doc)]
    out[lang] = [u for u in units if unit_language(u[0], languages) == lang]
  return out


def disjoint_sentence_rows(data_config: ml_collections.ConfigDict, tokenizer, split: str,
                           languages: Sequence[str], seq_len: int) -> dict[str, rows_lib.Rows]:
  """Sentence rows (as `sentence_rows`) of two languages from disjoint units of `split`
  (`disjoint_sentences`): the monolingual data of unsupervised MT.

  info per language: sentences, too_long, empty (as sentence_rows), units (the
  chapters/documents it keeps), units_other (those the other language keeps).
  """
  if seq_len < 3:
    raise UserError(f'seq_len={seq_len} must be at least 3 (bos, one token, eos)')
  texts = disjoint_sentences(data_config, split, languages)
  out = {}
  for lang, other in zip(languages, tuple(languages)[::-1]):
    rows = _rows_of(tokenizer, [s for _, _, s in texts[lang]], seq_len,
                    _language_id(data_config, lang),
                    f'{lang} sentence of the {split} split (its half of the units)')
    rows.info.update(units=len({u for u, _, _ in texts[lang]}),
                     units_other=len({u for u, _, _ in texts[other]}))
    out[lang] = rows
  return out
