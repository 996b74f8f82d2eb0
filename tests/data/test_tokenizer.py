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


# ----- Imported vocabularies (tokenizers library): WordPiece vocab.txt and tokenizer.json

BERT_VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'light', 'god', 'saw',
              'was', 'good', 'and', ',', '.', 'it', 'that', 'go', '##od', '##s']


@pytest.fixture()
def vocab_txt(tmp_path):
  path = tmp_path / 'vocab.txt'
  path.write_text('\n'.join(BERT_VOCAB) + '\n', encoding='utf-8')
  return str(path)


def test_wordpiece_vocab_txt(vocab_txt):
  tok = tokenizer_lib.load(vocab_txt)
  assert tok.vocab_size == len(BERT_VOCAB)
  assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3, 4)
  # Lower-cased (BERT uncased, no tokenizer_config.json), ## continuations, [UNK] for the rest.
  assert tok.encode('And God saw the light, that it was Goods.') == [
      11, 7, 8, 5, 6, 12, 15, 14, 9, 10, 18, 13]  # goods = good ##s (longest match first)
  assert tok.encode(['the light', 'xyz']) == [[5, 6], [1]]
  assert tok.decode([2, 7, 8, 5, 6, 3, 0]) == 'god saw the light'  # specials dropped


def test_wordpiece_casing_from_tokenizer_config(vocab_txt, tmp_path):
  uncased = tokenizer_lib.load(vocab_txt).fingerprint
  (tmp_path / 'tokenizer_config.json').write_text('{"do_lower_case": false}')
  cased = tokenizer_lib.load(vocab_txt)
  assert cased.encode('God the') == [1, 5]  # 'God' is not in the (lower-case) vocabulary
  assert cased.fingerprint != uncased  # the casing is part of the vocabulary's identity


def test_tokenizer_json_special_ids_and_no_truncation(tmp_path):
  tokenizers = pytest.importorskip('tokenizers')
  # RoBERTa-style specials in another order: the ids come from the file.
  vocab = {'<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3, 'a': 4, 'b': 5, '<mask>': 6}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token='<unk>'))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.enable_truncation(max_length=2)  # a file's own truncation must not cut text
  tok.enable_padding(length=8, pad_id=1, pad_token='<pad>')
  path = str(tmp_path / 'tokenizer.json')
  tok.save(path)
  loaded = tokenizer_lib.load(path)
  assert (loaded.pad_id, loaded.unk_id, loaded.bos_id, loaded.eos_id, loaded.mask_id) == (
      1, 3, 0, 2, 6)
  assert loaded.encode('a b a c b') == [4, 5, 4, 3, 5]
  assert len(loaded.fingerprint) == 16


def test_imported_vocabulary_errors(tmp_path, vocab_txt):
  path = tmp_path / 'x' / 'vocab.txt'
  path.parent.mkdir()
  path.write_text('\n'.join(w for w in BERT_VOCAB if w != '[MASK]'), encoding='utf-8')
  with pytest.raises(ValueError, match=r"no mask token \(one of \('\[MASK\]', '<mask>'\)\)"):
    tokenizer_lib.load(str(path))
  bad = tmp_path / 'tokenizer.json'
  bad.write_text('{"not": "a tokenizer"}')
  with pytest.raises(ValueError, match='is not a tokenizers file'):
    tokenizer_lib.load(str(bad))
  with pytest.raises(FileNotFoundError, match='no vocabulary at'):
    tokenizer_lib.load(str(tmp_path / 'missing.json'))
  with pytest.raises(FileNotFoundError, match='plm trains only sentencepiece'):
    tokenizer_lib.load_or_train(str(tmp_path / 'missing.json'), ['a'], 10)
  tok = tokenizer_lib.load(vocab_txt)
  with pytest.raises(ValueError, match=r'has 19 tokens but the model has an embedding table of '
                     r'30522 rows'):
    tokenizer_lib.check_vocab_size(tok, 30522, 'the model')
  tokenizer_lib.check_vocab_size(tok, 19, 'the model')
