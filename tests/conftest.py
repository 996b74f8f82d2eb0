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
