"""Tests for the Bible TFDS builder (built once per session by `tfds_dir`)."""

import collections
import sys

import tensorflow_datasets as tfds

from plm.data import bible


def _chapters(translation, split, data_dir):
  """{(book, chapter)} and {ref} of a built split, read from array_record."""
  source = tfds.data_source(f'bible/{translation}', split=split,
                            data_dir=data_dir, download=False)
  records = source.__getitems__(range(len(source)))
  chapters = {(r['book'].decode(), int(r['chapter'])) for r in records}
  return chapters, {r['ref'].decode() for r in records}


def test_parse_reference():
  assert bible.parse_reference('Revelation of John 18:6') == (
      'Revelation of John', 18, 6)


def test_splits_are_chapter_aligned_across_translations(tfds_dir):
  en = {s: _chapters('en_kjv', s, tfds_dir) for s in bible.SPLITS}
  es = {s: _chapters('es_rv1909', s, tfds_dir) for s in ('validation', 'test')}
  assert en['test'][0] and en['validation'][0]
  for split in ('validation', 'test'):
    assert en[split][0] == es[split][0]
    assert len(en[split][1] & es[split][1]) > 0.99 * len(es[split][1])
    # No chapter of a held-out split leaks into train, in either translation.
    assert not en[split][0] & en['train'][0]
    assert not es[split][0] & en['train'][0]
  assert not en['test'][0] & en['validation'][0]
  # Every verse of the source lands in exactly one split; test is ~5%.
  num_verses = sum(len(en[s][1]) for s in bible.SPLITS)
  assert num_verses == sum(1 for _ in bible.read_verses('en_kjv'))
  assert 0.02 < len(en['test'][1]) / num_verses < 0.09


def test_load_documents_in_canonical_order(tfds_dir):
  expected = collections.defaultdict(list)
  for _, ref, text in bible.read_verses('es_rv1909'):
    book, chapter, _ = bible.parse_reference(ref)
    if bible.chapter_split(book, chapter) == 'test':
      expected[book, chapter].append(text)
  docs = bible.load_documents('es_rv1909', 'test', tfds_dir)
  assert docs == list(expected.values())
  assert 'tensorflow' not in sys.modules
