"""Tests for plm.data.tokenizer."""

import itertools
import os

import pytest
import sentencepiece as spm

from plm.data import bible
from plm.data import tokenizer as tokenizer_lib

VOCAB = 300


@pytest.fixture(scope='module')
def texts():
  verses = itertools.islice(bible.read_verses('en_kjv'), 2000)
  return [text for _, _, text in verses]


@pytest.fixture(scope='module')
def tok(tmp_path_factory, texts):
  path = tmp_path_factory.mktemp('tok') / 'spm.model'
  return tokenizer_lib.load_or_train(str(path), texts, VOCAB)


def test_special_ids(tok):
  assert tok.vocab_size == VOCAB
  assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (
      0, 1, 2, 3, 4)
  sp = tok._sp  # pylint: disable=protected-access
  assert [sp.id_to_piece(i) for i in range(5)] == [
      '<pad>', '<unk>', '<s>', '</s>', '<mask>']
  assert tok.encode('a <mask> b').count(tok.mask_id) == 1


def test_round_trip(tok):
  text = 'And God saw the light, that it was good: selah.'
  ids = tok.encode(text)
  assert ids and all(5 <= i < VOCAB for i in ids)
  assert tok.decode(ids) == text
  assert tok.encode([text, text]) == [ids, ids]


def test_fingerprint_stable_and_saved(tmp_path, tok, texts):
  retrained = tokenizer_lib.load_or_train(
      str(tmp_path / 'b.model'), texts, VOCAB)
  assert retrained.fingerprint == tok.fingerprint
  assert len(tok.fingerprint) == 16
  # An existing file is loaded, not retrained (even with no texts).
  loaded = tokenizer_lib.load_or_train(tok.path, [], VOCAB)
  assert loaded.fingerprint == tok.fingerprint and loaded.path == tok.path
  assert os.listdir(tmp_path) == ['b.model']  # No temp file left behind.
  other = tokenizer_lib.load_or_train(str(tmp_path / 'c.model'), texts, 200)
  assert other.fingerprint != tok.fingerprint


def test_empty_corpus_raises(tmp_path):
  with pytest.raises(ValueError, match='corpus is empty'):
    tokenizer_lib.load_or_train(str(tmp_path / 't.model'), ['', '  '], 100)
  assert not os.listdir(tmp_path)


def test_vocab_too_large_raises(tmp_path):
  with pytest.raises(ValueError, match='Lower `data.vocab_size`'):
    tokenizer_lib.load_or_train(str(tmp_path / 't.model'), ['a b c'] * 10, 8000)


def test_foreign_model_files_raise(tmp_path, texts):
  path = tmp_path / 'other.model'
  spm.SentencePieceTrainer.train(  # Default ids: unk=0, bos=1, eos=2.
      sentence_iterator=iter(texts), model_prefix=str(tmp_path / 'other'),
      vocab_size=VOCAB, minloglevel=2)
  with pytest.raises(ValueError, match='does not use the fixed special ids'):
    tokenizer_lib.load_or_train(str(path), texts, VOCAB)
  path.write_bytes(b'not a model')
  with pytest.raises(ValueError, match='is not a sentencepiece model'):
    tokenizer_lib.load_or_train(str(path), texts, VOCAB)
