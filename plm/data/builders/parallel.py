"""A sentence-aligned language pair from a local directory, WMT/OPUS style.

Layout: for each split, one file per language, `<source_dir>/<stem>.<lang>`,
line i of one the translation of line i of the other (OPUS's Moses format,
WMT's `newstest2014.en`/`.de`). `splits` maps the TFDS split to the stem:

  config = parallel.config('~/opus', ('en', 'sw'),
                           splits={'train': 'CCMatrix.en-sw', 'test': 'flores.devtest'})
  pairs = parallel.load_pairs(config, 'train', data_dir='~/tensorflow_datasets')

Every line is kept as it is (an empty line stays an empty translation): the
alignment is the data. Files of different lengths are refused before anything
is written.
"""
import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from plm.data.builders import common
from plm.errors import MissingFileError, UserError

DEFAULT_SPLITS = {'train': 'train', 'validation': 'validation', 'test': 'test'}


@dataclasses.dataclass(eq=False)
class ParallelConfig(tfds.core.BuilderConfig):
  languages: tuple[str, str] = ('', '')  # file suffixes and feature names, e.g. ('en', 'sw')
  source_dir: str = ''  # absolute
  splits: tuple[tuple[str, str], ...] = ()  # (TFDS split, file stem) pairs


def config(source_dir: str, languages, splits=None) -> ParallelConfig:
  """The builder config of the pair's files, named after their fingerprint."""
  languages = tuple(languages)
  if len(languages) != 2 or len(set(languages)) != 2:
    raise UserError(f'languages={languages}: name two different languages, e.g. (\'en\', \'sw\')')
  source_dir = common.check_dir(source_dir, 'one file per language and split, <stem>.<lang>')
  splits = tuple(sorted((splits or DEFAULT_SPLITS).items()))
  files = [p for _, stem in splits for p in pair_files(source_dir, stem, languages)]
  name = f'{languages[0]}_{languages[1]}_{common.fingerprint(files, source_dir)}'
  return ParallelConfig(name=name, languages=languages, source_dir=source_dir, splits=splits,
                        description=f'{languages[0]}-{languages[1]} pairs from {source_dir}')


def pair_files(source_dir: str, stem: str, languages) -> list[str]:
  paths = [os.path.join(source_dir, f'{stem}.{lang}') for lang in languages]
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    found = sorted(f for f in os.listdir(source_dir) if not f.startswith('.'))
    raise MissingFileError(f'missing {missing}: a parallel split needs one file per language, '
                           f'<stem>.<lang>, line i of each a translation of the other (found in '
                           f'{source_dir}: {found}); add the file or fix `splits`')
  return paths


def count_lines(path: str) -> int:
  """Lines in a UTF-8 file (checks every byte decodes)."""
  number = 0
  for number, _ in common.utf8_lines(path):
    pass
  return number


class PlmParallel(tfds.core.GeneratorBasedBuilder):
  """Aligned sentence pairs of two languages from a local directory; the config names which."""

  name = 'plm_parallel'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        'index': tfds.features.Scalar(dtype=np.int64),  # line number - 1 in the files
        'translation': tfds.features.Translation(languages=self.builder_config.languages),
    }))

  def _split_generators(self, dl_manager):
    del dl_manager  # the user's files are local; nothing to download
    c = self.builder_config
    generators = {}
    for split, stem in c.splits:
      files = pair_files(c.source_dir, stem, c.languages)
      counts = [count_lines(p) for p in files]
      if counts[0] != counts[1]:
        raise UserError(f'{files[0]} has {counts[0]} lines but {files[1]} has {counts[1]}; '
                        'parallel files must be aligned line by line: fix the extraction '
                        '(or the alignment) so both have the same number of lines')
      if counts[0]:  # TFDS refuses to write an empty split
        generators[split] = self._generate_examples(files)
    if not generators:
      raise UserError(f'every parallel file in {c.source_dir} is empty; nothing to build')
    return generators

  def _generate_examples(self, files):
    languages = self.builder_config.languages
    with open(files[0], 'rb') as a, open(files[1], 'rb') as b:
      for index, lines in enumerate(zip(a, b)):
        # Decoding was checked by count_lines; strip only the line ending.
        text = [line.decode('utf-8-sig' if index == 0 else 'utf-8').rstrip('\r\n')
                for line in lines]
        yield index, {'index': index, 'translation': dict(zip(languages, text))}


def load_pairs(parallel_config: ParallelConfig, split: str, data_dir: str
               ) -> list[tuple[str, str]]:
  """The split's (first language, second language) pairs in file order."""
  sources = common.data_sources(PlmParallel, parallel_config, data_dir)
  if split not in sources:
    raise UserError(f'no {split!r} split (configured: {dict(parallel_config.splits)}, '
                    f'non-empty: {sorted(sources)}); name its files in `splits`')
  a, b = parallel_config.languages
  return [(r['translation'][a].decode('utf-8'), r['translation'][b].decode('utf-8'))
          for r in common.in_order(sources[split])]
