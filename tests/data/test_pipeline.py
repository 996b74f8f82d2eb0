"""Tests for plm.data.pipeline (make_dataset) and the deterministic batches of its Rows."""

import ml_collections
import numpy as np
import pytest

from plm.data import pipeline
from plm.data import rows as rows_lib
from plm.data import tokenizer as tokenizer_lib


def _arrays(num_rows, seq_len=4):
  # Row i is filled with token i + 1, so a batch's rows are readable as ids.
  tokens = np.repeat(np.arange(1, num_rows + 1)[:, None], seq_len, axis=1)
  ones = np.ones_like(tokens)
  return {'tokens': tokens, 'segment_ids': ones, 'positions': ones * 0,
          'langs': ones * 0}


def _dataset(num_rows, seq_len=4):
  return rows_lib.Rows(_arrays(num_rows, seq_len))


def _rows(ds, steps, batch_size, seed=0, **kwargs):
  """Row numbers of the batches at `steps`, concatenated."""
  batches = [ds.batch(s, batch_size, seed=seed, **kwargs) for s in steps]
  return np.concatenate([b['tokens'][:, 0] for b in batches]) - 1


def test_batch_is_pure_function_of_seed_and_step():
  ds = _dataset(100)
  first = ds.batch(3, 8, seed=1)
  # The packed keys, plus the stream id Rows gives every row (0: one stream).
  assert {k: v.shape for k, v in first.items()} == {
      **{k: (8, 4) for k in pipeline.KEYS}, 'stream': (8,)}
  np.testing.assert_array_equal(first['stream'], np.zeros(8))
  for k in (*pipeline.KEYS, 'stream'):
    np.testing.assert_array_equal(first[k], ds.batch(3, 8, seed=1)[k])
  rows = _rows(ds, [3], 8, seed=1)
  assert not np.array_equal(rows, _rows(ds, [4], 8, seed=1))
  assert not np.array_equal(rows, _rows(ds, [3], 8, seed=2))


def test_each_epoch_sees_every_row_once_and_is_reshuffled():
  ds = _dataset(10)
  rows = _rows(ds, range(5), 4, seed=7)  # Two epochs; batch 2 straddles them.
  epoch0, epoch1 = rows[:10], rows[10:]
  np.testing.assert_array_equal(np.sort(epoch0), np.arange(10))
  np.testing.assert_array_equal(np.sort(epoch1), np.arange(10))
  assert not np.array_equal(epoch0, epoch1)
  assert not np.array_equal(epoch0, np.arange(10))


def test_process_slices_make_the_global_batch():
  ds = _dataset(50)
  for step in (0, 7):
    global_rows = _rows(ds, [step], 8, seed=3)
    local = [_rows(ds, [step], 8, seed=3, process_index=i, process_count=2)
             for i in range(2)]
    assert all(len(l) == 4 for l in local)
    np.testing.assert_array_equal(np.concatenate(local), global_rows)
  with pytest.raises(ValueError, match='multiple of the process count 3'):
    ds.batch(0, 8, seed=0, process_count=3)


def test_resume_equals_continuing():
  continuous = _rows(_dataset(30), range(12), 8, seed=5)
  restarted = _rows(_dataset(30), range(6, 12), 8, seed=5)  # Fresh object.
  np.testing.assert_array_equal(restarted, continuous[6 * 8:])


def test_iterate_once_covers_rows_in_order_and_pads():
  ds = _dataset(10)
  batches = list(ds.iterate_once(4))
  assert len(batches) == 3 and all(b['tokens'].shape == (4, 4) for b in batches)
  tokens = np.concatenate([b['tokens'] for b in batches])
  np.testing.assert_array_equal(tokens[:10], ds.arrays['tokens'])
  assert not tokens[10:].any()
  for k in ds.keys:  # padding rows are 0 under every key
    assert not np.concatenate([b[k] for b in batches])[10:].any()
  halves = [list(ds.iterate_once(4, process_index=i, process_count=2))
            for i in range(2)]
  for b, h0, h1 in zip(batches, *halves):
    np.testing.assert_array_equal(np.concatenate([h0['tokens'], h1['tokens']]),
                                  b['tokens'])


def test_token_counts_and_fingerprint():
  arrays = _arrays(5)
  arrays['segment_ids'][0, 2:] = 0  # Two pad positions in row 0 (token 1).
  arrays['tokens'][0, 2:] = 0
  ds = rows_lib.Rows(arrays)
  np.testing.assert_array_equal(ds.token_counts(8), [0, 2, 4, 4, 4, 4, 0, 0])
  with pytest.raises(ValueError, match='vocab_size'):
    ds.token_counts(4)
  same = rows_lib.Rows(arrays)
  assert same.fingerprint == ds.fingerprint and len(ds.fingerprint) == 16
  arrays['tokens'][4, 0] = 7  # The datasets copied the arrays: unaffected.
  assert rows_lib.Rows(arrays).fingerprint != ds.fingerprint
  assert ds.fingerprint == same.fingerprint == rows_lib.Rows(ds.arrays).fingerprint


SENTENCES = {
    'en': [['the cat sat on the mat', 'the dog ran'], ['a bird sang']],
    'es': [['el gato se sienta', 'el perro corre'], ['un pajaro canta'],
           ['la casa es grande']],
}


def _write_textdir(tmp_path):
  for lang, docs in SENTENCES.items():
    text = '\n\n'.join('\n'.join(doc) for doc in docs) + '\n'
    for split in pipeline.SPLITS:
      (tmp_path / f'{lang}.{split}.txt').write_text(text, encoding='utf-8')
  return ml_collections.ConfigDict(dict(
      corpus='textdir', languages=('en', 'es'), text_dir=str(tmp_path),
      tfds_dir=str(tmp_path / 'unused'), seq_len=8))


def test_make_dataset_textdir_round_trip(tmp_path):
  config = _write_textdir(tmp_path)
  assert pipeline.load_texts(config, 'train') == SENTENCES
  texts = [s for docs in SENTENCES.values() for doc in docs for s in doc]
  tok = tokenizer_lib.load_or_train(str(tmp_path / 'spm.model'), texts, 60)
  ds = pipeline.make_dataset(config, tok, 'validation')
  assert ds.arrays['tokens'].shape[1] == 8
  assert set(ds.keys) == {*pipeline.KEYS, 'stream'} and not ds.arrays['stream'].any()
  for index, lang in enumerate(config.languages):
    rows = ds.arrays['langs'][:, 0] == index  # Position 0 is never padding.
    tokens, segments = ds.arrays['tokens'][rows], ds.arrays['segment_ids'][rows]
    assert np.all(ds.arrays['langs'][rows][segments > 0] == index)
    stream = tokens[segments > 0]
    stream = stream[stream != tok.bos_id]
    # Every sentence ends with eos: split the stream after each eos.
    sentences = np.split(stream, np.flatnonzero(stream == tok.eos_id) + 1)[:-1]
    decoded = [tok.decode(ids[:-1]) for ids in sentences]
    assert decoded == [s for doc in SENTENCES[lang] for s in doc]
  es_only = pipeline.make_dataset(config, tok, 'test', languages=('es',))
  assert np.all(es_only.arrays['langs'][es_only.arrays['segment_ids'] > 0] == 1)


def test_make_dataset_bible(tfds_dir, tmp_path):
  config = ml_collections.ConfigDict(dict(
      corpus='bible', languages=('en', 'es'), tfds_dir=tfds_dir, seq_len=64))
  texts = pipeline.load_texts(config, 'test')
  assert set(texts) == {'en', 'es'} and len(texts['en']) == len(texts['es'])
  tok = tokenizer_lib.load_or_train(
      str(tmp_path / 'spm.model'),
      [s for docs in texts.values() for doc in docs for s in doc], 1000)
  ds = pipeline.make_dataset(config, tok, 'test')
  counts = ds.token_counts(tok.vocab_size)
  assert counts[tok.bos_id] == np.sum(ds.arrays['positions'][
      ds.arrays['segment_ids'] > 0] == 0)
  num_verses = sum(len(d) for docs in texts.values() for d in docs)
  assert counts[tok.eos_id] == num_verses  # One eos after every verse.
  assert set(np.unique(ds.arrays['langs'][:, 0])) == {0, 1}
  again = pipeline.make_dataset(config, tok, 'test')
  assert again.fingerprint == ds.fingerprint


def test_order_fingerprint_follows_the_batches():
  ds = _dataset(50)
  a = ds.order_fingerprint(8, seed=1, steps=20)
  assert a == _dataset(50).order_fingerprint(8, seed=1, steps=20)
  assert a != ds.order_fingerprint(8, seed=2, steps=20)
  assert a != ds.order_fingerprint(4, seed=1, steps=20)
  # The same rows as batch() draws, hashed: a reordered stream changes it.
  rows = np.stack([_rows(ds, [s], 8, seed=1) for s in range(20)])
  import hashlib  # pylint: disable=g-import-not-at-top
  assert a == hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()[:16]
