"""The user's TSV task files (plm/data/tsv.py) and their rows (labelled.tsv_set)."""
import ml_collections
import numpy as np
import pytest

from plm.data import labelled, tokenizer as tokenizer_lib, tsv

VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'in', 'the', 'beginning', 'god',
         'created', 'heaven', 'and', 'earth', '.']


def _write(path, lines):
  path.write_text(''.join(line + '\n' for line in lines), encoding='utf-8')
  return str(path)


@pytest.fixture()
def tok(tmp_path):
  return tokenizer_lib.load(_write(tmp_path / 'vocab.txt', VOCAB))


def test_read_single_and_pairs(tmp_path):
  texts, labels = tsv.read(_write(tmp_path / 'a.tsv', ['In the beginning\tlaw', 'God\tlaw ']))
  assert texts == [('In the beginning',), ('God',)] and labels == ['law', 'law']
  texts, labels = tsv.read(_write(tmp_path / 'b.tsv', ['a\tb\tsame', 'c\td\tother']))
  assert texts == [('a', 'b'), ('c', 'd')] and labels == ['same', 'other']


@pytest.mark.parametrize('lines,fields,match', [
    (['a\tb', 'c\td\te'], None, r'b\.tsv:2 has 3 tab-separated fields, expected 2'),
    (['a\tb\tc\td'], None, r'b\.tsv:1 has 4 tab-separated fields; a task file has 2'),
    (['a\tx', '', 'b\ty'], None, r'b\.tsv:2 has 1 tab-separated fields, expected 2'),
    (['a\tb'], 3, r'b\.tsv:1 has 2 tab-separated fields, expected 3 like the training file'),
    (['a\t '], None, r'b\.tsv:1 has an empty label'),
    ([], None, r'b\.tsv is empty'),
])
def test_read_errors_name_file_and_line(tmp_path, lines, fields, match):
  with pytest.raises(ValueError, match=match):
    tsv.read(_write(tmp_path / 'b.tsv', lines), fields)


def test_unknown_label_names_file_and_line():
  assert tsv.label_ids('t.tsv', ['b', 'a', 'b'], ('a', 'b')) == [1, 0, 1]
  with pytest.raises(ValueError, match=r"t\.tsv:3 has the label 'c', which the training file "
                     r"does not have \(its labels: \['a', 'b'\]\)"):
    tsv.label_ids('t.tsv', ['a', 'b', 'c'], ('a', 'b'))


def test_parse_files():
  assert tsv.parse_files('en=a.tsv, de=/x/b.tsv') == {'en': 'a.tsv', 'de': '/x/b.tsv'}
  assert tsv.parse_files('') == {}
  with pytest.raises(ValueError, match='is not language=path'):
    tsv.parse_files('a.tsv')
  with pytest.raises(ValueError, match="names the language 'en' twice"):
    tsv.parse_files('en=a.tsv,en=b.tsv')
  with pytest.raises(FileNotFoundError, match='does not exist'):
    tsv.read('/nonexistent/x.tsv')


def _fc(seq_len=12, skip_long=False):
  return ml_collections.ConfigDict(dict(seq_len=seq_len, skip_long=skip_long))


def test_pair_rows_cell_by_cell(tmp_path, tok):
  path = _write(tmp_path / 'p.tsv', ['In the beginning\tGod created\tyes', 'earth\theaven .\tno'])
  rows = labelled.tsv_set(tok, path, ('no', 'yes'), 3, 2, _fc(), token_types=True).arrays
  # [CLS] in the beginning [SEP] god created [SEP]; [CLS] earth [SEP] heaven . [SEP]
  np.testing.assert_array_equal(rows['tokens'], [[2, 5, 6, 7, 3, 8, 9, 3, 0, 0, 0, 0],
                                                 [2, 12, 3, 10, 13, 3, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(rows['token_types'], [[0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0],
                                                      [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(rows['segment_ids'], rows['tokens'] != 0)
  np.testing.assert_array_equal(rows['positions'][1], [0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(rows['labels'], [1, 0])
  assert (rows['langs'] == 2).all()
  single = labelled.tsv_set(tok, path, ('no', 'yes'), 3, 0, _fc(), token_types=False).arrays
  assert 'token_types' not in single  # a model without segment embeddings gets none


def test_long_examples_stop_or_are_counted(tmp_path, tok):
  path = _write(tmp_path / 's.tsv', ['in the beginning god created the heaven\ta', 'god\tb'])
  with pytest.raises(ValueError, match=r'1 of 2 examples of .*s\.tsv need more than '
                     r'finetune\.seq_len=6'):
    labelled.tsv_set(tok, path, ('a', 'b'), 2, 0, _fc(6), token_types=False)
  rows = labelled.tsv_set(tok, path, ('a', 'b'), 2, 0, _fc(6, True), token_types=False)
  assert len(rows) == 1 and rows.info == {'skipped': 1}
  with pytest.raises(ValueError, match=r"s\.tsv:2 has the label 'b'"):
    labelled.tsv_set(tok, path, ('a',), 2, 0, _fc(12), token_types=False)


def test_classify_objective_feeds_token_types_of_pairs(tmp_path, tok):
  from plm.objectives import classify  # pylint: disable=g-import-not-at-top
  path = _write(tmp_path / 'p.tsv', ['In the beginning\tGod created\tyes'])
  rows = labelled.tsv_set(tok, path, ('no', 'yes'), 3, 0, _fc(), token_types=True)
  inputs, _ = classify.prepare(None, rows.arrays, {})
  np.testing.assert_array_equal(inputs['token_types'], rows.arrays['token_types'])
  single = labelled.tsv_set(tok, path, ('no', 'yes'), 3, 0, _fc(), token_types=False)
  assert 'token_types' not in classify.prepare(None, single.arrays, {})[0]
