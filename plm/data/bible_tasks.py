"""Labelled and parallel tasks made from the shipped, verse-aligned Bibles.

- Genre classification: a verse's label is the genre of its book (law,
  history, wisdom, prophets, gospels and Acts, letters and Revelation). The
  label is the same in every translation, so a classifier trained on English
  labels can be tested on Spanish ones (XLM's zero-shot transfer), and it needs
  understanding of the verse, not of its position.
- Parallel verses: the same reference in two or more translations (KJV and WEB
  for English paraphrase, KJV and Reina-Valera 1909 for translation).

Splits are the corpus's chapter splits, so no pair or label crosses train/test.
"""
from collections.abc import Sequence
import random

from plm.data import bible
from plm.errors import UserError

GENRES = ('law', 'history', 'wisdom', 'prophets', 'gospels_acts', 'letters_revelation')
_BOOKS_BY_GENRE = {
    'law': ('Genesis', 'Exodus', 'Leviticus', 'Numbers', 'Deuteronomy'),
    'history': ('Joshua', 'Judges', 'Ruth', 'I Samuel', 'II Samuel', 'I Kings', 'II Kings',
                'I Chronicles', 'II Chronicles', 'Ezra', 'Nehemiah', 'Esther'),
    'wisdom': ('Job', 'Psalms', 'Proverbs', 'Ecclesiastes', 'Song of Solomon'),
    'prophets': ('Isaiah', 'Jeremiah', 'Lamentations', 'Ezekiel', 'Daniel', 'Hosea', 'Joel',
                 'Amos', 'Obadiah', 'Jonah', 'Micah', 'Nahum', 'Habakkuk', 'Zephaniah',
                 'Haggai', 'Zechariah', 'Malachi'),
    'gospels_acts': ('Matthew', 'Mark', 'Luke', 'John', 'Acts'),
    'letters_revelation': (
        'Romans', 'I Corinthians', 'II Corinthians', 'Galatians', 'Ephesians', 'Philippians',
        'Colossians', 'I Thessalonians', 'II Thessalonians', 'I Timothy', 'II Timothy',
        'Titus', 'Philemon', 'Hebrews', 'James', 'I Peter', 'II Peter', 'I John', 'II John',
        'III John', 'Jude', 'Revelation of John'),
}
BOOK_GENRE = {book: GENRES.index(g) for g, books in _BOOKS_BY_GENRE.items() for book in books}


def genre_examples(translation: str, split: str, data_dir: str
                   ) -> tuple[list[str], list[int]]:
  """(verse texts, genre ids) of the split; books outside the 66-book canon are skipped."""
  texts, labels = [], []
  for ref, text in bible.load_verses(translation, split, data_dir):
    book, _, _ = bible.parse_reference(ref)
    if book in BOOK_GENRE:
      texts.append(text)
      labels.append(BOOK_GENRE[book])
  return texts, labels


def parallel_verses(translations: Sequence[str], split: str, data_dir: str
                    ) -> list[tuple[str, ...]]:
  """Verses present in every translation, as tuples in `translations` order.

  Verses whose text is empty in any translation (e.g. verses a modern
  translation folds into its neighbour) are dropped.
  """
  if len(translations) < 2:
    raise UserError(f'parallel_verses needs at least two translations, got {translations}')
  by_ref = [dict(bible.load_verses(t, split, data_dir)) for t in translations]
  refs = [ref for ref, _ in bible.load_verses(translations[0], split, data_dir)]
  return [tuple(table[ref] for table in by_ref) for ref in refs
          if all(table.get(ref, '').strip() for table in by_ref)]


PARAPHRASE_LABELS = ('same', 'other')


def paraphrase_pairs(verses_a: Sequence[tuple[str, str]], verses_b: Sequence[tuple[str, str]],
                     seed: int = 0) -> list[tuple[str, str, str]]:
  """A sentence-pair task (MRPC-like) from two translations of the same verses.

  Each verse of `verses_a` (ref, text) is paired with translation b's text of the same
  verse ('same') or, with probability 1/2, of another verse of the same chapter ('other',
  a hard negative: same book, names and topic). Verses missing or empty in b, and chapters
  of one verse, are left out. Returns (text_a, text_b, label) triples.
  """
  b_by_ref = {ref: text for ref, text in verses_b if text.strip()}
  chapters = {}
  for ref in b_by_ref:
    book, chapter, _ = bible.parse_reference(ref)
    chapters.setdefault((book, chapter), []).append(ref)
  rng = random.Random(seed)
  out = []
  for ref, text in verses_a:
    if not text.strip() or ref not in b_by_ref:
      continue
    book, chapter, _ = bible.parse_reference(ref)
    others = [r for r in chapters[(book, chapter)] if r != ref]
    if not others:
      continue
    if rng.random() < 0.5:
      out.append((text, b_by_ref[ref], 'same'))
    else:
      out.append((text, b_by_ref[rng.choice(others)], 'other'))
  return out
