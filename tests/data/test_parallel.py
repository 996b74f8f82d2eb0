"""TLM rows: packing cell by cell, the pair mask, parallel files and their errors."""
import ml_collections
import numpy as np
import pytest

from plm import masks
from plm.data import parallel
from plm.data import tokenizer as tokenizer_lib

B, E = 2, 3  # bos, eos


def test_pack_pairs_cell_by_cell():
  pairs = [([7, 8], [9]), ([5], [6]), ([10], [11, 12])]
  arrays, skipped = parallel.pack_pairs(pairs, 12, B, E, src_lang=0, tgt_lang=1)
  assert skipped == 0
  # Pair 1 takes 7 slots; pair 2 (6) does not fit in the 5 left: new row; pair 3 (7) does not
  # fit in the 6 left of row 1 either.
  np.testing.assert_array_equal(arrays['tokens'], [
      [B, 7, 8, E, B, 9, E, 0, 0, 0, 0, 0],
      [B, 5, E, B, 6, E, 0, 0, 0, 0, 0, 0],
      [B, 10, E, B, 11, 12, E, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(arrays['positions'], [
      [0, 1, 2, 3, 0, 1, 2, 0, 0, 0, 0, 0],
      [0, 1, 2, 0, 1, 2, 0, 0, 0, 0, 0, 0],
      [0, 1, 2, 0, 1, 2, 3, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(arrays['langs'], [
      [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0],
      [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(arrays['segment_ids'], [
      [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
      [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]])


def test_pairs_share_a_row_each_its_own_segment():
  pairs = [([7], [8]), ([5, 6], [9])]  # 6 + 7 slots fill a row of 13 exactly
  arrays, _ = parallel.pack_pairs(pairs, 13, B, E, src_lang=1, tgt_lang=0)
  np.testing.assert_array_equal(arrays['tokens'], [[B, 7, E, B, 8, E, B, 5, 6, E, B, 9, E]])
  np.testing.assert_array_equal(arrays['segment_ids'], [[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]])
  np.testing.assert_array_equal(arrays['positions'], [[0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2]])
  np.testing.assert_array_equal(arrays['langs'], [[1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0]])


def test_tlm_mask_source_sees_target_within_a_pair_only():
  # Row: pair 1 = [b 7 e | b 8 e], pair 2 = [b 5 e | b 6 e] (source | target), then padding.
  arrays, _ = parallel.pack_pairs([([7], [8]), ([5], [6])], 14, B, E, src_lang=0, tgt_lang=1)
  np.testing.assert_array_equal(arrays['segment_ids'],
                                [[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0]])
  mask = np.asarray(masks.packed_mask(arrays['segment_ids']))[0, 0]
  expected = np.zeros((14, 14), int)
  expected[:6, :6] = 1  # source and target of pair 1 see each other, both ways
  expected[6:12, 6:12] = 1  # pair 2 likewise; nothing crosses pairs or reaches padding
  np.testing.assert_array_equal(mask.astype(int), expected)


def test_a_pair_longer_than_a_row_is_left_out_whole_and_counted():
  pairs = [([7, 8, 9, 10], [11, 12, 13]), ([5], [6])]  # 11 slots > 8
  arrays, skipped = parallel.pack_pairs(pairs, 8, B, E, src_lang=0, tgt_lang=1)
  assert skipped == 1
  np.testing.assert_array_equal(arrays['tokens'], [[B, 5, E, B, 6, E, 0, 0]])


def _config(tmp_path, **overrides):
  fields = dict(corpus='textdir', languages=('en', 'es'), text_dir='', seq_len=32,
                tfds_dir=str(tmp_path / 'tfds'), parallel_dir=str(tmp_path), tlm_pairs=('en-es',))
  return ml_collections.ConfigDict({**fields, **overrides})


EN = ['the cat sat', 'a dog ran', '', 'the bird sang']
ES = ['el gato se sienta', 'un perro corre', 'vacio', 'el pajaro canta']


def _write(tmp_path, name, lines):
  (tmp_path / name).write_text(''.join(l + '\n' for l in lines), encoding='utf-8')


def test_parallel_files_round_trip_both_directions(tmp_path):
  _write(tmp_path, 'es-en.train.en', EN)  # the es-en prefix serves en-es too
  _write(tmp_path, 'es-en.train.es', ES)
  config = _config(tmp_path)
  assert parallel.parse_pairs(config) == [('en', 'es'), ('es', 'en')]
  assert parallel.load_pairs(config, 'en', 'es', 'train') == list(zip(EN, ES))
  tok = tokenizer_lib.load_or_train(str(tmp_path / 'spm.model'), EN + ES, 40)
  ds = parallel.make_tlm_dataset(config, tok, 'train', 'es', 'en')
  assert (ds.info['pairs'], ds.info['empty'], ds.info['too_long']) == (3, 1, 0)
  assert set(ds.keys) == {'tokens', 'segment_ids', 'positions', 'langs', 'stream'}
  assert not ds.arrays['stream'].any()  # one stream; a mix renumbers it
  a = ds.arrays
  decoded = []
  for r in range(len(ds)):
    for seg in range(1, a['segment_ids'][r].max() + 1):
      here = a['segment_ids'][r] == seg
      tokens, langs, pos = a['tokens'][r][here], a['langs'][r][here], a['positions'][r][here]
      start = int(np.flatnonzero(pos == 0)[1])  # the target half starts at its own position 0
      np.testing.assert_array_equal(langs, [1] * start + [0] * (len(langs) - start))  # es, en
      np.testing.assert_array_equal(pos, np.r_[np.arange(start), np.arange(len(pos) - start)])
      decoded.append((tok.decode(tokens[1:start - 1]), tok.decode(tokens[start + 1:-1])))
  assert decoded == [(s, e) for e, s in zip(EN, ES) if e]


def test_line_count_mismatch_names_both_files_and_counts(tmp_path):
  _write(tmp_path, 'en-es.train.en', EN)
  _write(tmp_path, 'en-es.train.es', ES[:3])
  with pytest.raises(ValueError) as e:
    parallel.load_pairs(_config(tmp_path), 'en', 'es', 'train')
  message = str(e.value)
  assert f'{tmp_path / "en-es.train.en"} has 4 lines but {tmp_path / "en-es.train.es"} has 3' \
      in message and 'line counts match' in message


def test_non_utf8_missing_files_and_unknown_language(tmp_path):
  _write(tmp_path, 'en-es.train.en', EN)
  (tmp_path / 'en-es.train.es').write_bytes(b'uno\nni\xf1o\n')
  with pytest.raises(ValueError, match=r'en-es\.train\.es, line 2: not UTF-8'):
    parallel.load_pairs(_config(tmp_path), 'en', 'es', 'train')
  with pytest.raises(FileNotFoundError, match=r'expected en-es\.test\.en and en-es\.test\.es'):
    parallel.load_pairs(_config(tmp_path), 'en', 'es', 'test')
  with pytest.raises(ValueError, match=r"unknown language\(s\) \['de'\]; the known ones are "
                     r"data.languages=\['en', 'es'\]"):
    parallel.parse_pairs(_config(tmp_path, tlm_pairs=('en-de',)))
  with pytest.raises(ValueError, match="write a pair of two languages as 'en-es'"):
    parallel.parse_pairs(_config(tmp_path, tlm_pairs=('en',)))
  with pytest.raises(ValueError, match=r"known languages: \['en', 'en_web', 'es'\]"):
    parallel.load_pairs(_config(tmp_path, parallel_dir='', languages=('en', 'fr')), 'en', 'fr',
                        'train')
