"""TFDS builder for the shipped Bible translations (verse-aligned, by chapter).

Each translation is one BuilderConfig. Splits are by chapter with a hash that
depends only on 'book chapter', so the same chapter lands in the same split in
every translation and translation pairs never straddle train and test.

Read it back without TensorFlow through `tfds.data_source` (array_record):

  docs = load_documents('en_kjv', 'train', data_dir='~/tensorflow_datasets')
"""

import collections
import dataclasses
import functools
import lzma
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds

from plm.errors import UserError

CORPUS_DIR = os.path.join(os.path.dirname(__file__), 'corpora', 'bible')
SPLITS = ('train', 'validation', 'test')
TRANSLATIONS = {'en_kjv': 'en', 'en_web': 'en', 'es_rv1909': 'es'}


def chapter_split(book: str, chapter: int) -> str:
  """Stable split of a chapter: ~5% test, ~5% validation, the rest train."""
  bucket = zlib.crc32(f'{book} {chapter}'.encode('utf-8')) % 20
  return {0: 'test', 1: 'validation'}.get(bucket, 'train')


def parse_reference(ref: str) -> tuple[str, int, int]:
  """'Revelation of John 18:6' -> ('Revelation of John', 18, 6)."""
  book, _, chapter_verse = ref.rpartition(' ')
  chapter, _, verse = chapter_verse.partition(':')
  return book, int(chapter), int(verse)


def read_verses(translation: str):
  """Yields (index, ref, text) from the shipped `<translation>.tsv.xz`."""
  path = os.path.join(CORPUS_DIR, f'{translation}.tsv.xz')
  with lzma.open(path, 'rt', encoding='utf-8') as f:
    for index, line in enumerate(f):
      ref, text = line.rstrip('\n').split('\t', 1)
      yield index, ref, text


@dataclasses.dataclass(eq=False)
class BibleConfig(tfds.core.BuilderConfig):
  language: str = ''  # ISO 639-1 code of the translation


class Bible(tfds.core.GeneratorBasedBuilder):
  """Bible verses of one translation, split by chapter."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
      BibleConfig(name=name, language=lang, description=f'{name} verses.')
      for name, lang in TRANSLATIONS.items()
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'index': tfds.features.Scalar(dtype=np.int64),
            'ref': tfds.features.Text(),
            'book': tfds.features.Text(),
            'chapter': tfds.features.Scalar(dtype=np.int32),
            'verse': tfds.features.Scalar(dtype=np.int32),
            'text': tfds.features.Text(),
        }),
        homepage='https://ebible.org',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The corpus ships with the package; nothing to download.
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split):
    for index, ref, text in read_verses(self.builder_config.name):
      book, chapter, verse = parse_reference(ref)
      if chapter_split(book, chapter) == split:
        yield index, {
            'index': index, 'ref': ref, 'book': book, 'chapter': chapter,
            'verse': verse, 'text': text,
        }


def load_documents(
    translation: str, split: str, data_dir: str
) -> list[list[str]]:
  """Returns the split's chapters in canonical order, each a list of verses.

  Prepares `bible/<translation>` into `data_dir` on first use (seconds) and
  reuses it afterwards.
  """
  chapters = collections.defaultdict(list)  # Keeps first-seen (file) order.
  for ref, text in load_verses(translation, split, data_dir):
    book, chapter, _ = parse_reference(ref)
    chapters[(book, chapter)].append(text)
  return list(chapters.values())


def load_verses(
    translation: str, split: str, data_dir: str
) -> tuple[tuple[str, str], ...]:
  """The split's (reference, text) verses in canonical (file) order."""
  if translation not in TRANSLATIONS:
    raise UserError(
       f'Unknown Bible translation {translation!r}; use one of '
       f'{sorted(TRANSLATIONS)} (files in {CORPUS_DIR}).')
  if split not in SPLITS:
    raise UserError(f'Unknown split {split!r}; use one of {SPLITS}.')
  return _read_verses(translation, split,
                      os.path.abspath(os.path.expanduser(data_dir)))


@functools.lru_cache(maxsize=16)
def _read_verses(translation: str, split: str, data_dir: str) -> tuple[tuple[str, str], ...]:
  """Cached per process: TFDS decodes records in Python (~3 s a translation)."""
  source = tfds.data_source(
      f'bible/{translation}', split=split, data_dir=data_dir,
      builder_kwargs={'file_format': 'array_record'})
  # Records come back in writer (hashed) order: restore the file order.
  records = sorted(source.__getitems__(range(len(source))),
                   key=lambda r: r['index'])
  return tuple((r['ref'].decode('utf-8'), r['text'].decode('utf-8')) for r in records)
