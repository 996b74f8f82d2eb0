"""An XNLI-style evaluation set from a local directory: premise, hypothesis, label.

Layout (XTREME's): `<source_dir>/<file split>-<language>.tsv` with file splits
train, dev (the TFDS `validation` split) and test, whichever exist. Each line is
`premise<TAB>hypothesis<TAB>label`, label one of entailment, neutral,
contradiction (XTREME's `contradictory` is read as contradiction); a first line
naming the columns (`premise  hypothesis  label` or `sentence1  sentence2
gold_label`) is skipped.

  config = xnli.config('~/xnli', 'sw')
  examples = xnli.load_examples(config, 'test', data_dir='~/tensorflow_datasets')
"""
import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from plm.data.builders import common
from plm.errors import MissingFileError, UserError

LABELS = ('entailment', 'neutral', 'contradiction')  # XNLI's (and MultiNLI's) order
ALIASES = {'contradictory': 'contradiction'}
FILE_SPLITS = {'train': 'train', 'validation': 'dev', 'test': 'test'}
HEADERS = (('premise', 'hypothesis', 'label'), ('sentence1', 'sentence2', 'gold_label'))


@dataclasses.dataclass(eq=False)
class XnliConfig(tfds.core.BuilderConfig):
  language: str = ''  # the file suffix, e.g. 'sw'
  source_dir: str = ''  # absolute


def split_files(source_dir: str, language: str) -> dict[str, str]:
  """{TFDS split: path} of the files that exist; none is an error."""
  files = {split: os.path.join(source_dir, f'{stem}-{language}.tsv')
           for split, stem in FILE_SPLITS.items()}
  files = {split: path for split, path in files.items() if os.path.isfile(path)}
  if not files:
    found = sorted(f for f in os.listdir(source_dir) if not f.startswith('.'))
    raise MissingFileError(f'no XNLI file for {language!r} in {source_dir}: expected '
                           f'{[f"{s}-{language}.tsv" for s in FILE_SPLITS.values()]} (found: '
                           f'{found})')
  return files


def config(source_dir: str, language: str) -> XnliConfig:
  """The builder config of one language's files, named after their fingerprint."""
  source_dir = common.check_dir(source_dir, 'XNLI TSVs named <train|dev|test>-<language>.tsv')
  files = split_files(source_dir, language)
  return XnliConfig(name=f'{language}_{common.fingerprint(list(files.values()), source_dir)}',
                    language=language, source_dir=source_dir,
                    description=f'XNLI-style {language} examples from {source_dir}')


def read_tsv(path: str) -> list[tuple[str, str, int]]:
  """(premise, hypothesis, label id) rows; a malformed line is one error naming it."""
  rows = []
  for number, line in common.utf8_lines(path):
    fields = line.split('\t')
    if number == 1 and tuple(f.strip().lower() for f in fields) in HEADERS:
      continue
    if len(fields) != 3:
      raise UserError(f'{path}, line {number}: {len(fields)} tab-separated fields, expected 3 '
                      '(premise, hypothesis, label); remove stray tabs or fix the export')
    label = ALIASES.get(fields[2].strip(), fields[2].strip())
    if label not in LABELS:
      raise UserError(f'{path}, line {number}: label {fields[2]!r} is not one of {LABELS}; '
                      'fix the label column')
    rows.append((fields[0], fields[1], LABELS.index(label)))
  return rows


class PlmXnli(tfds.core.GeneratorBasedBuilder):
  """Premise/hypothesis/label examples of one language from local TSVs."""

  name = 'plm_xnli'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        'index': tfds.features.Scalar(dtype=np.int64),  # row number in the file, header aside
        'premise': tfds.features.Text(),
        'hypothesis': tfds.features.Text(),
        'label': tfds.features.ClassLabel(names=LABELS),
    }))

  def _split_generators(self, dl_manager):
    del dl_manager  # the user's files are local; nothing to download
    c = self.builder_config
    # Read (and check) every file before anything is written.
    rows = {split: read_tsv(path) for split, path in split_files(c.source_dir, c.language).items()}
    if not any(rows.values()):
      raise UserError(f'every XNLI file of {c.language!r} in {c.source_dir} is empty')
    return {split: self._generate_examples(r) for split, r in rows.items() if r}

  def _generate_examples(self, rows):
    for index, (premise, hypothesis, label) in enumerate(rows):
      yield index, {'index': index, 'premise': premise, 'hypothesis': hypothesis, 'label': label}


def load_examples(xnli_config: XnliConfig, split: str, data_dir: str
                  ) -> list[tuple[str, str, int]]:
  """The split's (premise, hypothesis, label id) rows in file order; ids index LABELS."""
  sources = common.data_sources(PlmXnli, xnli_config, data_dir)
  if split not in sources:
    raise UserError(f'no {split!r} split for {xnli_config.language!r} (built: '
                    f'{sorted(sources)}); add {FILE_SPLITS.get(split, split)}-'
                    f'{xnli_config.language}.tsv to {xnli_config.source_dir}')
  return [(r['premise'].decode('utf-8'), r['hypothesis'].decode('utf-8'), int(r['label']))
          for r in common.in_order(sources[split])]
