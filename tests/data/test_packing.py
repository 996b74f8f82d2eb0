"""Tests for plm.data.packing."""

import numpy as np
import pytest

from plm.data import packing

BOS, EOS = 2, 3


def _random_docs(rng, seq_len):
  # Document tokens avoid 0/bos/eos so that those are only placed by packing.
  lengths = [0, 1, seq_len - 2, seq_len - 1, seq_len, 3 * seq_len + 5]
  lengths += list(rng.integers(0, 4 * seq_len, size=40))
  return [rng.integers(5, 100, size=n).astype(np.int32) for n in lengths]


def _segments(packed):
  """Yields (row, tokens, positions) of every segment in row-major order."""
  for r, segment_ids in enumerate(packed['segment_ids']):
    for s in range(1, segment_ids.max() + 1):
      where = segment_ids == s
      yield r, packed['tokens'][r, where], packed['positions'][r, where]


def test_small_example_exact():
  packed = packing.pack_documents(
      [np.array([5, 6, 7]), np.array([8])], seq_len=4, bos_id=BOS, eos_id=EOS)
  # Stream 5 6 7 eos | 8 eos; the second document fills the room the first left.
  np.testing.assert_array_equal(
      packed['tokens'], [[2, 5, 6, 7], [2, 3, 2, 8], [2, 3, 0, 0]])
  np.testing.assert_array_equal(
      packed['segment_ids'], [[1, 1, 1, 1], [1, 1, 2, 2], [1, 1, 0, 0]])
  np.testing.assert_array_equal(
      packed['positions'], [[0, 1, 2, 3], [0, 1, 0, 1], [0, 1, 0, 0]])


def test_segments_share_rows():
  packed = packing.pack_documents(
      [np.array([5]), np.array([6]), np.array([7])], 8, BOS, EOS)
  np.testing.assert_array_equal(packed['tokens'], [[2, 5, 3, 2, 6, 3, 2, 7],
                                                   [2, 3, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(packed['segment_ids'][0],
                                [1, 1, 1, 2, 2, 2, 3, 3])


@pytest.mark.parametrize('seq_len', [2, 7, 32])
def test_every_token_once_in_order(seq_len):
  docs = _random_docs(np.random.default_rng(seq_len), seq_len)
  packed = packing.pack_documents(docs, seq_len, BOS, EOS)
  assert all(v.shape == (len(packed['tokens']), seq_len) and v.dtype == np.int32
             for v in packed.values())
  stream = []
  for _, tokens, positions in _segments(packed):
    assert tokens[0] == BOS and BOS not in tokens[1:]
    np.testing.assert_array_equal(positions, np.arange(len(tokens)))
    stream.extend(tokens[1:])
  expected = np.concatenate([np.append(d, EOS) for d in docs if len(d)])
  np.testing.assert_array_equal(stream, expected)


def test_segment_layout_and_dense_fill():
  seq_len = 16
  docs = _random_docs(np.random.default_rng(0), seq_len)
  packed = packing.pack_documents(docs, seq_len, BOS, EOS)
  segment_ids = packed['segment_ids']
  np.testing.assert_array_equal(packed['tokens'] == 0, segment_ids == 0)
  for row in segment_ids:
    used = row[row > 0]
    # Segments are contiguous, numbered 1, 2, ... and padding only trails.
    np.testing.assert_array_equal(np.unique(used), np.arange(1, used.max() + 1))
    assert np.all(np.diff(used) >= 0) and np.all(row[len(used):] == 0)
  # Dense: only the last row may have more than one padding slot.
  assert np.all(np.sum(segment_ids[:-1] == 0, axis=1) <= 1)


def test_empty_input_and_bad_seq_len():
  assert packing.pack_documents([], 8, BOS, EOS)['tokens'].shape == (0, 8)
  with pytest.raises(ValueError, match='seq_len must be at least 2'):
    packing.pack_documents([np.array([5])], 1, BOS, EOS)
