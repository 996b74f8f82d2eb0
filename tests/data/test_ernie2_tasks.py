"""ERNIE 2.0's example builders (plm/data/ernie2_tasks.py) on hand-made chapters.

A word-level stub tokenizer (one piece per whitespace word, sentencepiece's offsets: a piece
covers the space before it) makes every label checkable by hand.
"""
import random
import types

import numpy as np
import pytest

from plm.data import ernie2_tasks as et
from plm.kg import linker

BOS, EOS = 2, 3


class WordTokenizer:
  """One piece per whitespace-separated word; ids assigned on first sight from 10."""
  bos_id, eos_id = BOS, EOS

  def __init__(self):
    self.vocab = {}

  def _id(self, word):
    return self.vocab.setdefault(word, 10 + len(self.vocab))

  def encode(self, text, return_type=None):
    if isinstance(text, list):
      return [self.encode(t) for t in text]
    pieces, prev = [], 0
    for m in __import__('re').finditer(r'\S+', text):
      pieces.append(types.SimpleNamespace(id=self._id(m.group()), begin=prev, end=m.end()))
      prev = m.end()
    if return_type == 'proto':
      return types.SimpleNamespace(pieces=pieces)
    return [p.id for p in pieces]

  def words(self, ids):
    inverse = {v: k for k, v in self.vocab.items()}
    return ' '.join(inverse[i] for i in ids)


GENESIS_8 = et.Chapter('Genesis', 8, (
    'And the ark rested upon the mountains of Ararat.',
    'But the dove found no rest for the sole of her foot.',
    'And GOD remembered Noah.',
    'Then the LORD spake unto Noah.'), parallel=(
    'The ship rested on the mountains of Ararat.',
    'But the dove found no place to rest her foot.',
    'God remembered Noah.',
    ''))
EXODUS_2 = et.Chapter('Exodus', 2, (
    'And there went a man of the house of Levi.',
    'And the woman conceived, and bare a son.',
    'For she could not hide him.'), parallel=(
    'A man of the house of Levi went.',
    'The woman conceived, and bore a son.',
    'She could not hide him.'))


@pytest.fixture
def tok():
  return WordTokenizer()


def test_capitalization_labels_each_word_of_the_lower_cased_verse(tok):
  chapter = et.Chapter('Genesis', 8, ('And GOD remembered Noah, and the ark.',))
  (example,) = et.capitalization([chapter], tok, random.Random(0))
  assert tok.words(example.segments[0]) == 'and god remembered noah, and the ark.'
  assert example.token_labels == [[1, 1, 0, 1, 0, 0, 0]]  # GOD all-caps counts as capitalised


def test_token_document_asks_whether_a_word_occurs_in_another_verse(tok):
  examples = et.token_document([GENESIS_8], tok, random.Random(0))
  assert tok.words(examples[2].segments[0]) == 'And GOD remembered Noah.'
  # 'and' (verse 1, lower-cased), 'god' no, 'remembered' no, 'noah' (verse 4)
  assert examples[2].token_labels == [[1, 0, 0, 1]]
  # 'Then the LORD spake unto Noah.': the (1, 2), lord no, spake no, unto no, noah (3)
  assert examples[3].token_labels == [[0, 1, 0, 0, 0, 1]]


def test_sentence_reorder_label_undoes_the_shuffle(tok):
  examples = et.sentence_reorder([GENESIS_8, EXODUS_2], tok, random.Random(1))
  encoded = [tok.encode(v) for c in (GENESIS_8, EXODUS_2) for v in c.verses]
  seen, labels = 0, set()
  for e in examples:
    perm = et.REORDER_PERMUTATIONS[e.label]
    assert len(perm) == len(e.segments)
    originals = [None] * len(perm)
    for shown, p in zip(e.segments, perm):
      originals[p] = shown
    labels.add(e.label)
    assert sum(len(s) for s in originals) > 0
    seen += len(perm)
  # every verse of a chapter is used once, in order, across its examples
  assert seen == len(encoded)
  assert len(labels) > 1


def test_sentence_distance_labels_match_where_b_comes_from(tok):
  chapters = [GENESIS_8, EXODUS_2]
  examples = et.sentence_distance(chapters, tok, random.Random(0))
  where = {tuple(tok.encode(v)): (c, i) for c, ch in enumerate(chapters)
           for i, v in enumerate(ch.verses)}
  assert {e.label for e in examples} == {0, 1, 2}
  for e in examples:
    (ca, ia), (cb, ib) = where[tuple(e.segments[0])], where[tuple(e.segments[1])]
    expected = 2 if ca != cb else 0 if ib == ia + 1 else 1
    assert e.label == expected and (expected != 1 or abs(ia - ib) > 1)


def test_discourse_removes_the_connective_and_keeps_the_verse_before(tok):
  examples = et.discourse([GENESIS_8], tok, random.Random(0), balance=False)
  got = {(tok.words(e.segments[1]), et.DISCOURSE_CONNECTIVES[e.label]) for e in examples}
  assert got == {('The dove found no rest for the sole of her foot.', 'but'),
                 ('GOD remembered Noah.', 'and'), ('The LORD spake unto Noah.', 'then')}
  but = next(e for e in examples if e.label == et.DISCOURSE_CONNECTIVES.index('but'))
  assert tok.words(but.segments[0]) == GENESIS_8.verses[0]


def test_ir_relevance_strong_weak_irrelevant(tok):
  chapters = [GENESIS_8, EXODUS_2]
  examples = et.ir_relevance(chapters, tok, random.Random(0))
  assert len(examples) == 7
  for e in examples:
    query, doc = tok.words(e.segments[0]), tok.words(e.segments[1])
    c = next(c for c in chapters if query in c.verses)
    i = c.verses.index(query)
    if e.label == 0:
      assert doc == c.parallel[i]
    elif e.label == 1:
      assert doc in c.parallel and doc != c.parallel[i]
    else:
      assert doc not in c.parallel
  assert 0 not in {e.label for e in examples if tok.words(e.segments[0]) == GENESIS_8.verses[3]}


def test_knowledge_masking_units_cover_entity_mentions(tok):
  table = linker.alias_table([('ark', 'n1', 1), ('dove', 'n2', 1), ('sole', 'n3', 1),
                              ('Mount_Ararat', 'n4', 1)])
  examples = et.knowledge_masking([GENESIS_8], tok, random.Random(0), table=table, seq_len=64)
  assert len(examples) == 1  # the chapter's four verses fit one row of 64
  words = tok.words(examples[0].segments[0]).split()
  units = examples[0].units[0]
  assert [w for w, u in zip(words, units) if u] == ['ark', 'dove', 'sole']
  assert [u for u in units if u] == [1, 2, 3]
  # a row of 12 pieces: verses go to separate rows, unit ids restart per row
  short = et.knowledge_masking([GENESIS_8], tok, random.Random(0), table=table, seq_len=16)
  assert [[u for u in e.units[0] if u] for e in short] == [[1], [1, 2]]


def test_layout_writes_segments_labels_and_types(tok):
  examples = [et.Example([[11, 12], [13]], label=2),
              et.Example([[14, 15, 16]], token_labels=[[1, -1, 0]]),
              et.Example([list(range(20, 40))], label=1)]  # 22 tokens > 8: left out
  rows = et.layout(examples, 8, bos_id=BOS, eos_id=EOS, stream=5)
  a = rows.arrays
  np.testing.assert_array_equal(a['tokens'], [[2, 11, 12, 3, 13, 3, 0, 0],
                                              [2, 14, 15, 16, 3, 0, 0, 0]])
  np.testing.assert_array_equal(a['token_types'], [[0, 0, 0, 0, 1, 1, 0, 0],
                                                   [0, 0, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(a['labels'], [[2, 0, 0, 0, 0, 0, 0, 0],
                                              [0, 1, 0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(a['label_weights'], [[1, 0, 0, 0, 0, 0, 0, 0],
                                                     [0, 1, 0, 1, 0, 0, 0, 0]])
  np.testing.assert_array_equal(a['segment_ids'].sum(1), [6, 5])
  assert rows.info == dict(examples=3, too_long=1) and set(a['stream']) == {5}


def test_a_corpus_without_the_structure_is_one_clear_error(tok):
  one = [et.Chapter('Genesis', 1, ('In the beginning.', 'And God said.', 'And it was so.'))]
  with pytest.raises(ValueError, match='sentence_distance.*at least 2 chapters'):
    et.build_rows('sentence_distance', one, tok, 32, seed=0)
  with pytest.raises(ValueError, match='ir_relevance.*second translation'):
    et.build_rows('ir_relevance', one, tok, 32, seed=0)
  with pytest.raises(ValueError, match="unknown ERNIE 2.0 task 'caps'"):
    et.build_rows('caps', one, tok, 32, seed=0)
