"""The entity linker (plm/kg/linker.py): spans, sense choice, first-subword alignment.

Hand-made alias tables pin the matching rules; the real WordNet table (built once, ~6 s)
pins the documented sense choices; a stub tokenizer with known pieces pins the alignment
arithmetic, and a sentencepiece model trained here checks offsets on real (non-ASCII) text.
"""
import types

import pytest

from plm.data import tokenizer as tokenizer_lib
from plm.kg import linker

NEW_YORK, YORK, NEW, MINSTER, YORK_MINSTER = 'n1', 'n2', 'n3', 'n4', 'n5'


@pytest.fixture(scope='module')
def table():
  return linker.alias_table([
      ('New_York', NEW_YORK, 1), ('York', YORK, 1), ('new', NEW, 1), ('minster', MINSTER, 1),
      ('York_Minster', YORK_MINSTER, 1), ('have-not', 'n6', 1), ('ice_cream', 'n7', 1),
      ('in', 'n8', 1), ('the_City', 'n9', 1), ('city', 'n10', 1), ('St._Louis', 'n11', 1)])


def _spans(mentions):
  return [(m.start, m.end, m.surface, m.entity) for m in mentions]


def test_longest_match_multi_word_and_overlapping(table):
  text = 'From New York to York Minster, new york and York.'
  assert _spans(linker.link(table, text)) == [
      (5, 13, 'New York', NEW_YORK), (17, 29, 'York Minster', YORK_MINSTER),
      (31, 39, 'new york', NEW_YORK), (44, 48, 'York', YORK)]
  # Leftmost first: 'new york minster' is 'new york' then 'minster', never 'York Minster'.
  assert _spans(linker.link(table, 'a New York Minster')) == [
      (2, 10, 'New York', NEW_YORK), (11, 18, 'Minster', MINSTER)]


def test_mentions_never_cross_punctuation(table):
  # 'New. York' and 'New, York' are two words apart by punctuation: no 'New York'.
  assert _spans(linker.link(table, 'New. York')) == [(0, 3, 'New', NEW), (5, 9, 'York', YORK)]
  assert [m.entity for m in linker.link(table, 'new,york')] == [NEW, YORK]
  assert [m.entity for m in linker.link(table, 'New  \n York')] == [NEW_YORK]  # whitespace ok


def test_hyphens_and_possessives(table):
  assert [m.surface for m in linker.link(table, 'an ice-cream, an ice cream')] == [
      'ice-cream', 'ice cream']  # a hyphen in text matches an alias's space
  assert linker.link(table, 'they have not') == []  # an alias's hyphen needs a hyphen
  assert [m.entity for m in linker.link(table, 'the have-nots and have-not')] == ['n6']
  assert _spans(linker.link(table, "York's and York’s walls")) == [
      (0, 4, 'York', YORK), (11, 15, 'York', YORK)]


def test_stopwords_and_closed_class_first_words(table):
  assert linker.link(table, 'in the city') == [
      linker.Mention(7, 11, 'city', 'n10')]  # 'in' (inch) and 'the city' (of London) not
  assert [m.entity for m in linker.link(table, 'bankers of the City')] == ['n9']
  assert [m.entity for m in linker.link(table, 'The city is old.')] == ['n10']
  assert [m.entity for m in linker.link(table, 'The City is old.')] == ['n9']
  assert [m.entity for m in linker.link(table, 'St. Louis')] == []  # '.' inside: unmatchable
  assert 'st. louis' not in table.aliases


def test_case_preference_then_most_frequent_sense():
  t = linker.alias_table([('job', 'n_work', 1), ('job', 'n_task', 2), ('Job', 'n_book', 12),
                          ('Job', 'n_patriarch', 9)])
  assert t.aliases['job'] == (('job', 'n_work'), ('job', 'n_task'), ('Job', 'n_patriarch'),
                              ('Job', 'n_book'))  # sense order
  assert [m.entity for m in linker.link(t, 'and Job said')] == ['n_patriarch']
  assert [m.entity for m in linker.link(t, 'and JOB said')] == ['n_patriarch']
  assert [m.entity for m in linker.link(t, 'a job')] == ['n_work']
  # At the start of a text or sentence the capital says nothing: sense 1.
  assert [m.entity for m in linker.link(t, 'Job done. "Job well done')] == ['n_work', 'n_work']


def test_part_of_speech_prior_and_lemmas():
  t = linker.alias_table(
      [('saw', 'n_tool', 1), ('child', 'n_child', 1), ('men', 'n_workforce', 1),
       ('man', 'n_man', 1), ('bear', 'n_bear', 1)],
      pos_counts={('saw', 'n'): 0, ('see', 'v'): 500, ('child', 'n'): 40,
                  ('men', 'n'): 1, ('man', 'n'): 90, ('bear', 'n'): 3, ('bear', 'v'): 3},
      exceptions={'noun': {'children': ('child',)}, 'verb': {'saw': ('see',)}})
  text = 'I saw a bear; the children and men saw a saw.'
  assert [(m.surface, m.entity) for m in linker.link(t, text)] == [
      ('bear', 'n_bear'), ('children', 'n_child'), ('men', 'n_man')]  # ties (3:3) link


def test_real_wordnet_sense_choices():
  table = linker.wordnet_aliases()
  got = {m.surface: m.entity for m in linker.link(
      table, 'And the LORD said unto Job, the children of the dogs saw New York men.')}
  assert got == {'LORD': 'n09536363',  # Godhead, Lord, Creator (capitalised lemma)
                 'Job': 'n11085402',  # the patriarch (sense 9, the first capitalised one)
                 'children': 'n09917593',  # child, kid (noun.exc)
                 'dogs': 'n02084071', 'New York': 'n09119277',
                 'men': 'n10287213'}  # man, adult_male; 'saw' (verb 'see') is left alone
  assert {e[0] for e in table.entities} == {'n'}  # nouns by default
  verbs = linker.wordnet_aliases(pos=('n', 'v'), lemmatize=False)
  assert {e[0] for _, e in verbs.aliases['eat']} == {'v'}  # 'eat' is only a verb
  with pytest.raises(ValueError, match="name parts of speech among 'n', 'v', 'a', 'r'"):
    linker.wordnet_aliases(pos=('noun',))


class _StubTokenizer:
  """Pieces at given (begin, end) byte offsets: [(id, begin, end)]."""

  def __init__(self, pieces):
    self.pieces = pieces

  def encode(self, text, return_type=None):
    del text, return_type
    return types.SimpleNamespace(pieces=[types.SimpleNamespace(id=i, begin=b, end=e)
                                         for i, b, e in self.pieces])


def test_alignment_to_first_subword_counts_bos(table):
  text = 'to New York'  # pieces: '▁to' '▁N' 'ew' '▁Yo' 'rk'
  tok = _StubTokenizer([(10, 0, 2), (11, 2, 4), (12, 4, 6), (13, 6, 9), (14, 9, 11)])
  mentions = linker.link(table, text)
  assert _spans(mentions) == [(3, 11, 'New York', NEW_YORK)]
  # Row [bos, '▁to', '▁N', 'ew', '▁Yo', 'rk', eos]: the first subword of 'New York' is '▁N'
  # at index 2 (bos is index 0); '▁N' holds the space before 'New' and still is its first.
  assert linker.align_to_subwords(text, mentions, tok) == [(2, NEW_YORK)]
  # Two mentions whose first subword is one piece: the later one is dropped.
  two = [linker.Mention(3, 6, 'New', NEW), linker.Mention(5, 11, 'w York', YORK)]
  assert linker.align_to_subwords(text, two, _StubTokenizer([(1, 0, 2), (2, 2, 11)])) == [
      (2, NEW)]
  # An empty piece before the mention is never its first subword.
  tok = _StubTokenizer([(10, 0, 2), (11, 3, 3), (12, 2, 7), (13, 7, 11)])
  assert linker.align_to_subwords(text, mentions, tok) == [(3, NEW_YORK)]


@pytest.fixture(scope='module')
def spm_tokenizer(tmp_path_factory):
  texts = ['Ève est allée à New York, puis à York.', 'crème brûlée in New York; naïve dogs.',
           'The dogs of New York and the men of York.'] * 30
  return tokenizer_lib.load_or_train(str(tmp_path_factory.mktemp('spm') / 'spm.model'), texts,
                                     vocab_size=70)


@pytest.mark.parametrize('text', ['The dogs of New York and the men of York.',
                                  'Ève est allée à New York, puis à (York).',
                                  'naïve crème: New  York'])
def test_alignment_with_sentencepiece_offsets(table, spm_tokenizer, text):
  ids, spans = linker.subword_spans(text, spm_tokenizer)
  assert ids == spm_tokenizer.encode(text)  # the row's pieces are exactly the tokenizer's
  mentions = [m for m in linker.link(table, text) if m.entity in (NEW_YORK, YORK)]
  assert [m.surface.split() for m in mentions][:1] == [['New', 'York']]
  aligned = linker.align_to_subwords(text, mentions, spm_tokenizer)
  assert [e for _, e in aligned] == [m.entity for m in mentions]
  row = [spm_tokenizer.bos_id] + ids + [spm_tokenizer.eos_id]
  for (index, _), m in zip(aligned, mentions):
    begin, end = spans[index - 1]
    assert 0 < index < len(row) - 1 and row[index] == ids[index - 1]
    assert begin <= m.start < end  # the piece holds the mention's first character ...
    assert index == 1 or spans[index - 2][1] <= m.start  # ... and is its first piece
    piece = spm_tokenizer.decode([row[index]]).strip()
    assert piece and m.surface.startswith(piece[:1])


def test_check_entities():
  linker.check_entities({'n1', 'n2'}, ['n1', 'n2', 'n3'])
  with pytest.raises(ValueError) as e:
    linker.check_entities(['n1', 'n2', 'n9'], ['n1'])
  assert "2 of the alias table's 3 entities are not in the entity embedding file" in str(e.value)
  assert "['n2', 'n9']" in str(e.value) and 'wordnet_aliases(entities=' in str(e.value)
