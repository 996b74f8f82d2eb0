"""One language's plain text from a local directory, e.g. an extracted Wikipedia dump.

Layout: `<source_dir>/<language>/`, every file below it (recursively, in sorted
order, hidden files skipped): UTF-8, one sentence or paragraph per line, a
blank line between documents. WikiExtractor's `<doc ...>` and `</doc>` lines
also separate documents, so its output (`AA/wiki_00`, ...) works as it is.

  config = monolingual.config('~/wiki', 'sw')
  docs = monolingual.load_documents(config, 'train', data_dir='~/tensorflow_datasets')

Documents are split by a hash of their text (about 1% validation, 1% test), so
a document repeated in the dump never straddles train and test.
"""
import dataclasses
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds

from plm.data.builders import common
from plm.errors import MissingFileError, UserError

SPLITS = ('train', 'validation', 'test')
LAYOUT = ('one directory per language, <source_dir>/<language>/, with UTF-8 text files: one '
          'sentence or paragraph per line, a blank line between documents')


@dataclasses.dataclass(eq=False)
class TextConfig(tfds.core.BuilderConfig):
  language: str = ''  # the language directory's name, e.g. 'sw'
  source_dir: str = ''  # absolute; holds <language>/
  held_out_permille: int = 10  # per held-out split (validation, test)


def config(source_dir: str, language: str, held_out_permille: int = 10) -> TextConfig:
  """The builder config of `<source_dir>/<language>/`, named after its files' fingerprint."""
  source_dir = common.check_dir(source_dir, LAYOUT)
  files = text_files(source_dir, language)
  if not 0 <= held_out_permille <= 500:
    raise UserError(f'held_out_permille={held_out_permille}: use 0 to 500 (per held-out split)')
  return TextConfig(name=f'{language}_{common.fingerprint(files, source_dir)}', language=language,
                    source_dir=source_dir, held_out_permille=held_out_permille,
                    description=f'{language} text from {source_dir}')


def text_files(source_dir: str, language: str) -> list[str]:
  root = os.path.join(source_dir, language)
  if not os.path.isdir(root):
    found = sorted(d for d in os.listdir(source_dir) if not d.startswith('.'))
    raise MissingFileError(f'no directory {root} for language {language!r}; the text builder '
                           f'needs {LAYOUT} (found in {source_dir}: {found})')
  files = []
  for d, subdirs, names in os.walk(root):
    subdirs[:] = [x for x in subdirs if not x.startswith('.')]  # prunes hidden directories
    files += [os.path.join(d, f) for f in names if not f.startswith('.')]
  files.sort()
  if not files:
    raise MissingFileError(f'{root} holds no text files; the text builder needs {LAYOUT}')
  return files


def split_of(text: str, permille: int) -> str:
  bucket = zlib.crc32(text.encode('utf-8')) % 1000
  return 'test' if bucket < permille else 'validation' if bucket < 2 * permille else 'train'


def documents(path: str):
  """Yields each document of a file as a list of lines."""
  doc = []
  for _, line in common.utf8_lines(path):
    line = line.strip()
    if line and not (line.startswith('<doc ') or line == '</doc>'):
      doc.append(line)
    elif doc:
      yield doc
      doc = []
  if doc:
    yield doc


class PlmText(tfds.core.GeneratorBasedBuilder):
  """Documents of one language from a local directory; the config names which."""

  name = 'plm_text'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        'index': tfds.features.Scalar(dtype=np.int64),  # document number in the corpus
        'source': tfds.features.Text(),  # file path under <source_dir>/<language>/
        'text': tfds.features.Text(),  # the document's lines joined by '\n'
    }))

  def _split_generators(self, dl_manager):
    del dl_manager  # the user's files are local; nothing to download
    c = self.builder_config
    files = text_files(c.source_dir, c.language)
    # One pass first: a bad file fails before anything is written, and an empty
    # split (a small corpus) is left out rather than written (TFDS refuses it).
    counts = dict.fromkeys(SPLITS, 0)
    for path in files:
      for doc in documents(path):
        counts[split_of('\n'.join(doc), c.held_out_permille)] += 1
    if not sum(counts.values()):
      raise UserError(f'{os.path.join(c.source_dir, c.language)} holds no text (every file is '
                      f'empty); the text builder needs {LAYOUT}')
    return {split: self._generate_examples(files, split) for split in SPLITS if counts[split]}

  def _generate_examples(self, files, split):
    c = self.builder_config
    index = 0
    for path in files:
      for doc in documents(path):
        text = '\n'.join(doc)
        if split_of(text, c.held_out_permille) == split:
          yield index, {'index': index, 'text': text,
                        'source': os.path.relpath(path, os.path.join(c.source_dir, c.language))}
        index += 1


def load_documents(text_config: TextConfig, split: str, data_dir: str) -> list[list[str]]:
  """The split's documents in corpus order, each a list of lines (the pipeline's shape)."""
  if split not in SPLITS:
    raise UserError(f'Unknown split {split!r}; use one of {SPLITS}')
  sources = common.data_sources(PlmText, text_config, data_dir)
  if split not in sources:
    raise UserError(f'the {split} split of {text_config.source_dir}/{text_config.language} '
                    'is empty: too few documents for held_out_permille='
                    f'{text_config.held_out_permille}; add text or raise it')
  return [r['text'].decode('utf-8').split('\n') for r in common.in_order(sources[split])]
