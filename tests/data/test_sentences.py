"""Sentence and pair rows: layout cell by cell, langs, left-out counts, never a cut sentence."""
import ml_collections
import numpy as np
import pytest

from plm.data import sentences
from plm.data import tokenizer as tokenizer_lib

B, E = 2, 3  # bos, eos
PAIR = dict(bos_id=B, eos_id=E, pad_id=0)


def test_pair_rows_cell_by_cell_and_counts():
  pairs = [([7], [8, 9]),            # fits
           ([5, 6, 7], [8]),         # source 5 > src_len 4: left out whole
           ([5], [6, 7, 8, 9]),      # target 6 > tgt_len 5: left out whole
           ([], [8]),                # empty source
           ([10, 11], [12])]         # fits exactly on the source side
  rows = sentences.pair_rows(pairs, src_lang=0, tgt_lang=1, src_len=4, tgt_len=5, **PAIR)
  assert rows.info == dict(pairs=2, too_long=2, empty=1)
  assert set(rows.keys) == set(sentences.PAIR_KEYS) | {'stream'}
  a = rows.arrays
  np.testing.assert_array_equal(a['src_tokens'], [[B, 7, E, 0], [B, 10, 11, E]])
  np.testing.assert_array_equal(a['src_segment_ids'], [[1, 1, 1, 0], [1, 1, 1, 1]])
  np.testing.assert_array_equal(a['src_positions'], [[0, 1, 2, 0], [0, 1, 2, 3]])
  np.testing.assert_array_equal(a['src_langs'], [[0, 0, 0, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(a['tgt_tokens'], [[B, 8, 9, E, 0], [B, 12, E, 0, 0]])
  np.testing.assert_array_equal(a['tgt_segment_ids'], [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])
  np.testing.assert_array_equal(a['tgt_positions'], [[0, 1, 2, 3, 0], [0, 1, 2, 0, 0]])
  np.testing.assert_array_equal(a['tgt_langs'], [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])


def test_pair_rows_pad_id_and_length_errors():
  rows = sentences.pair_rows([([7], [8])], src_lang=1, tgt_lang=0, src_len=4, tgt_len=3,
                             bos_id=B, eos_id=E, pad_id=9)
  np.testing.assert_array_equal(rows.arrays['src_tokens'], [[B, 7, E, 9]])
  np.testing.assert_array_equal(rows.arrays['src_langs'], [[1, 1, 1, 0]])
  with pytest.raises(ValueError, match=r'tgt_len=2 must be at least 3'):
    sentences.pair_rows([], src_lang=0, tgt_lang=1, src_len=4, tgt_len=2, **PAIR)


EN = ['the cat sat on the mat', 'a dog ran', '',
      'the bird sang a very long song about the cat and the dog and the mat']
ES = ['el gato se sienta', 'un perro corre', 'vacio', 'el pajaro canta']


@pytest.fixture(scope='module')
def tok(tmp_path_factory):
  path = tmp_path_factory.mktemp('vocab') / 'spm.model'
  return tokenizer_lib.load_or_train(str(path), EN + ES, 40)


def _config(tmp_path, **overrides):
  fields = dict(corpus='textdir', languages=('en', 'es'), text_dir=str(tmp_path), seq_len=32,
                tfds_dir=str(tmp_path / 'tfds'), parallel_dir=str(tmp_path), tlm_pairs=())
  return ml_collections.ConfigDict({**fields, **overrides})


def _write(path, lines):
  path.write_text(''.join(l + '\n' for l in lines), encoding='utf-8')


def test_sentence_rows_one_sentence_per_row_long_ones_left_out(tmp_path, tok):
  # Two documents (blank-line separated); every line is one sentence, one row.
  _write(tmp_path / 'es.train.txt', ['el gato se sienta', 'un perro corre', '', 'vacio',
                                     ' '.join(EN)])
  ids = tok.encode(['el gato se sienta', 'un perro corre', 'vacio', ' '.join(EN)])
  seq_len = max(len(i) for i in ids[:3]) + 2  # the last (long) sentence does not fit
  assert len(ids[3]) + 2 > seq_len
  rows = sentences.sentence_rows(_config(tmp_path), tok, 'train', 'es', seq_len)
  assert rows.info == dict(sentences=3, too_long=1, empty=0)
  assert set(rows.keys) == {'tokens', 'segment_ids', 'positions', 'langs', 'stream'}
  want = np.zeros((3, seq_len), np.int32)
  for r, sentence in enumerate(ids[:3]):
    n = len(sentence) + 2
    want[r, :n] = [tok.bos_id, *sentence, tok.eos_id]
    np.testing.assert_array_equal(rows.arrays['positions'][r], np.r_[np.arange(n),
                                                                     np.zeros(seq_len - n)])
  np.testing.assert_array_equal(rows.arrays['tokens'], want)
  np.testing.assert_array_equal(rows.arrays['segment_ids'], want > 0)
  np.testing.assert_array_equal(rows.arrays['langs'], want > 0)  # es is language 1
  # With room for it, the long sentence comes back whole, never cut.
  rows = sentences.sentence_rows(_config(tmp_path), tok, 'train', 'es', len(ids[3]) + 2)
  assert rows.info['too_long'] == 0
  np.testing.assert_array_equal(rows.arrays['tokens'][3], [tok.bos_id, *ids[3], tok.eos_id])


def test_sentence_rows_errors(tmp_path, tok):
  _write(tmp_path / 'en.train.txt', [' '.join(EN)])
  with pytest.raises(ValueError, match=r"'fr' is not in data.languages=\['en', 'es'\]"):
    sentences.sentence_rows(_config(tmp_path), tok, 'train', 'fr', 32)
  with pytest.raises(ValueError, match=r'No en sentence of the train split fits in 4 tokens '
                     r'\(1 too long, 0 empty, of 1\)'):
    sentences.sentence_rows(_config(tmp_path), tok, 'train', 'en', 4)


def test_translation_rows_from_parallel_files(tmp_path, tok):
  _write(tmp_path / 'en-es.train.en', EN)
  _write(tmp_path / 'en-es.train.es', ES)
  config = _config(tmp_path)
  en, es = tok.encode([EN[0], EN[1], EN[3]]), tok.encode([ES[0], ES[1], ES[3]])
  src_len = max(len(i) for i in es) + 2
  tgt_len = max(len(en[0]), len(en[1])) + 2  # the long English verse does not fit
  rows = sentences.translation_rows(config, tok, 'train', 'es', 'en', src_len, tgt_len)
  assert rows.info == dict(pairs=2, too_long=1, empty=1)  # empty: the '' line
  a = rows.arrays
  for r in range(2):
    for side, ids, lang, length in (('src', es[r], 1, src_len), ('tgt', en[r], 0, tgt_len)):
      n = len(ids) + 2
      pad = [0] * (length - n)
      np.testing.assert_array_equal(a[f'{side}_tokens'][r], [tok.bos_id, *ids, tok.eos_id] + pad)
      np.testing.assert_array_equal(a[f'{side}_langs'][r], [lang] * n + pad)
      np.testing.assert_array_equal(a[f'{side}_positions'][r], list(range(n)) + pad)
  with pytest.raises(ValueError, match=r'No es-en pair of the train split fits in 3 source / '
                     r'3 target tokens \(3 too long, 1 with an empty side\)'):
    sentences.translation_rows(config, tok, 'train', 'es', 'en', 3, 3)
