"""plm.data.rows: Rows under any keys, their stream ids, batches, iterate_once, concatenate."""
import numpy as np
import pytest

from plm.data import mixing
from plm.data import rows as rows_lib

L = 5


def _labelled(num_rows, base=0, **kwargs):
  """Row i: label base + i and tokens base + i + 1 at every position; a row names itself."""
  labels = base + np.arange(num_rows)
  tokens = np.repeat(labels[:, None] + 1, L, axis=1)
  return rows_lib.Rows(dict(labels=labels, tokens=tokens), **kwargs)


def _check_rows_agree(batch, base=0):
  """Each row's tokens are its label + 1: the keys of a batch were taken from the same rows."""
  np.testing.assert_array_equal(batch['tokens'], np.repeat(batch['labels'][:, None] + 1, L, 1))
  assert np.all(batch['labels'] >= base)


def test_arbitrary_keys_batch_with_their_own_shapes():
  ds = _labelled(20, stream=3)
  assert ds.keys == ('labels', 'stream', 'tokens') and len(ds) == 20
  assert ds.arrays['labels'].dtype == ds.arrays['tokens'].dtype == np.int32
  np.testing.assert_array_equal(ds.arrays['stream'], np.full(20, 3))
  b = ds.batch(2, 8, seed=1)
  assert {k: v.shape for k, v in b.items()} == {'labels': (8,), 'tokens': (8, L),
                                                'stream': (8,)}
  _check_rows_agree(b)
  np.testing.assert_array_equal(b['stream'], np.full(8, 3))
  assert len(set(ds.batch(1, 8, seed=1)['labels'])) == 8  # slots 8-15: rows of one epoch
  for k in ds.keys:
    np.testing.assert_array_equal(b[k], ds.batch(2, 8, seed=1)[k])
  # An epoch (20 rows, batch 4: steps 0-4) holds every row once; the next is reshuffled.
  epochs = np.concatenate([ds.batch(s, 4, seed=1)['labels'] for s in range(10)])
  np.testing.assert_array_equal(np.sort(epochs[:20]), np.arange(20))
  np.testing.assert_array_equal(np.sort(epochs[20:]), np.arange(20))
  assert not np.array_equal(epochs[:20], epochs[20:])
  halves = [ds.batch(2, 8, seed=1, process_index=i, process_count=2) for i in range(2)]
  for k in ds.keys:
    np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]), b[k])


@pytest.mark.parametrize('process_count', [1, 2])
def test_iterate_once_with_arbitrary_keys_pads_with_zero_rows(process_count):
  ds = _labelled(10, base=4, stream=2)  # labels 4..13, tokens 5..14, stream 2: all nonzero
  batches = list(ds.iterate_once(4))
  assert len(batches) == 3
  assert all({k: v.shape for k, v in b.items()} == {'labels': (4,), 'tokens': (4, L),
                                                    'stream': (4,)} for b in batches)
  got = {k: np.concatenate([b[k] for b in batches]) for k in ds.keys}
  for k in ds.keys:  # every row once, in order, then 2 padding rows that are 0 everywhere
    np.testing.assert_array_equal(got[k][:10], ds.arrays[k])
    assert not got[k][10:].any()
  # Each process's slices, put together, are the global batches.
  parts = [list(ds.iterate_once(4, process_index=i, process_count=process_count))
           for i in range(process_count)]
  for step, batch in enumerate(batches):
    for k in ds.keys:
      np.testing.assert_array_equal(np.concatenate([p[step][k] for p in parts]), batch[k])


def test_rows_check_their_arrays_and_copy_them():
  with pytest.raises(ValueError, match="array 'tokens' has 3 rows, the others 4"):
    rows_lib.Rows(dict(labels=np.arange(4), tokens=np.zeros((3, L))))
  with pytest.raises(ValueError, match='at least one array'):
    rows_lib.Rows({})
  labels = np.arange(6)
  ds = rows_lib.Rows(dict(labels=labels))
  labels[0] = 99  # the Rows copied the array
  assert ds.arrays['labels'][0] == 0
  with pytest.raises(ValueError):  # read-only: nothing can change the data under a fingerprint
    ds.arrays['labels'][0] = 5
  with pytest.raises(ValueError, match='empty dataset'):
    rows_lib.Rows(dict(labels=np.zeros((0,)))).batch(0, 4, seed=0)
  with pytest.raises(ValueError, match='multiple of the process count 3'):
    ds.batch(0, 4, seed=0, process_count=3)
  with pytest.raises(ValueError, match=r'process_index 2 not in \[0, 2\)'):
    rows_lib.per_process(4, 2, 2)
  assert rows_lib.per_process(8, 1, 2) == 4


def test_fingerprint_names_the_data_not_the_stream():
  ds = _labelled(6)
  assert ds.with_stream(5).fingerprint == ds.fingerprint
  np.testing.assert_array_equal(ds.with_stream(5).arrays['stream'], np.full(6, 5))
  np.testing.assert_array_equal(ds.arrays['stream'], np.zeros(6))  # the original unchanged
  for k in ('labels', 'tokens'):
    np.testing.assert_array_equal(ds.with_stream(5).arrays[k], ds.arrays[k])
  assert _labelled(6, base=1).fingerprint != ds.fingerprint
  renamed = rows_lib.Rows(dict(classes=ds.arrays['labels'], tokens=ds.arrays['tokens']))
  assert renamed.fingerprint != ds.fingerprint  # the key names count


def test_mixed_batch_stream_ids_name_the_stream_of_each_row():
  # Stream s holds labels 1000 s + row, so a row's content says which stream it came from.
  # The input Rows' own stream ids (7) are replaced by the stream's index in the mix.
  streams = {name: _labelled(n, base=1000 * s, stream=7)
             for s, (name, n) in enumerate([('a', 30), ('b', 7), ('c', 12)])}
  ds = mixing.MixedDataset(streams, {'a': 0.5, 'b': 0.3, 'c': 0.2})
  assert ds.names == ('a', 'b', 'c')
  seen = []
  for step in range(40):
    b = ds.batch(step, 16, seed=2)
    assert {k: v.shape for k, v in b.items()} == {'labels': (16,), 'tokens': (16, L),
                                                  'stream': (16,)}
    _check_rows_agree(b)
    np.testing.assert_array_equal(b['stream'], b['labels'] // 1000)
    stream, row = ds.order(step, 16, seed=2)
    np.testing.assert_array_equal(b['stream'], stream)
    np.testing.assert_array_equal(b['labels'], 1000 * stream + row)
    seen.append(b['stream'])
  counts = np.bincount(np.concatenate(seen), minlength=3)
  assert np.all(counts > 0) and counts[0] > counts[2]  # every stream drawn, by weight
  # The streams handed in keep their own ids.
  assert all(np.all(s.arrays['stream'] == 7) for s in streams.values())
  halves = [ds.batch(5, 16, seed=2, process_index=i, process_count=2) for i in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['stream'] for h in halves]),
                                ds.batch(5, 16, seed=2)['stream'])


def test_mixed_streams_must_have_the_same_keys():
  other = rows_lib.Rows(dict(classes=np.arange(4), tokens=np.zeros((4, L))))
  with pytest.raises(ValueError, match='different keys'):
    mixing.MixedDataset({'a': _labelled(4), 'b': other}, {'a': 1.0, 'b': 1.0})


def test_concatenate_keeps_order_and_stream_ids_and_refuses_other_keys():
  a, b = _labelled(3, stream=1), _labelled(4, base=10, stream=2)
  both = rows_lib.concatenate([a, b], info=dict(skipped=5))
  assert both.keys == a.keys and len(both) == 7 and both.info == dict(skipped=5)
  np.testing.assert_array_equal(both.arrays['labels'], [0, 1, 2, 10, 11, 12, 13])
  np.testing.assert_array_equal(both.arrays['tokens'][:, 0], [1, 2, 3, 11, 12, 13, 14])
  np.testing.assert_array_equal(both.arrays['stream'], [1, 1, 1, 2, 2, 2, 2])
  other = rows_lib.Rows(dict(labels=np.arange(2)))  # no 'tokens'
  with pytest.raises(ValueError, match='cannot concatenate rows with different keys'):
    rows_lib.concatenate([a, other])
  with pytest.raises(ValueError, match='different keys'):
    rows_lib.concatenate([other, a, b])
