"""Shared fixtures (data only)."""

import pytest


@pytest.fixture(scope='session')
def tfds_dir(tmp_path_factory):
  """TFDS data_dir with bible/en_kjv and bible/es_rv1909, built once (~15 s)."""
  # Imported here so test sessions that never build data skip importing TFDS.
  from plm.data import bible  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp('tensorflow_datasets'))
  for translation in ('en_kjv', 'es_rv1909'):
    bible.load_documents(translation, 'test', path)
  return path


@pytest.fixture(scope='session')
def tiny_config(tfds_dir, tmp_path_factory):
  """configs/xlm.py:tiny on the shared TFDS dir with one vocabulary for all tests."""
  from configs import xlm  # pylint: disable=g-import-not-at-top
  from plm import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  config = xlm.get_config('tiny')
  config.data.tfds_dir = tfds_dir
  config.data.vocab_path = str(tmp_path_factory.mktemp('vocab') / 'spm.model')
  workdir_lib.load_tokenizer(config, '')  # trains it once (~1 s)
  return config
