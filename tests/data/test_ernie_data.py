"""ERNIE's linked corpus and fine-tuning rows (plm/data/ernie.py, plm/data/ernie_tasks.py):
NSP pairs by construction, entities at first subwords, markers, fingerprint checks."""
import numpy as np
import pytest

from plm.data import ernie as ed
from plm.data import ernie_tasks as et
from plm.kg import linker


def sentence(n, start, mentions=()):
  return ed.Sentence(tuple(range(start, start + n)), tuple(mentions), f's{start}')


def test_nsp_pairs_are_the_next_sentence_or_another_pairs_by_construction():
  pairs = [(sentence(3, 100 + 10 * i, [(1, 1, i + 1)]), sentence(2, 500 + 10 * i, [(0, 1, 50 + i)]))
           for i in range(400)]
  rows = ed.nsp_rows(pairs, seq_len=12, seed=3, bos_id=2, eos_id=3)
  a = rows.arrays
  assert len(rows) == 400 and 0.42 < a['nsp_labels'].mean() < 0.58
  seconds = {tuple(b.ids): b for _, b in pairs}
  for r, (first, second) in enumerate(pairs):
    tokens = a['tokens'][r]
    np.testing.assert_array_equal(tokens[:5], [2, *first.ids, 3])
    b_ids = tuple(tokens[5:7])
    assert tokens[7] == 3 and not tokens[8:].any()
    assert (b_ids == second.ids) == bool(a['nsp_labels'][r])  # 1 = the true next sentence
    assert b_ids in seconds  # 0 = another pair's second sentence
    np.testing.assert_array_equal(a['token_types'][r], [0] * 5 + [1] * 3 + [0] * 4)
    np.testing.assert_array_equal(a['segment_ids'][r], [1] * 8 + [0] * 4)
    # entities at the first subword: A's mention piece 1 -> row 2; B's piece 0 -> row 5
    want = np.zeros(12, int)
    want[2] = r + 1
    want[5] = seconds[b_ids].mentions[0][2]
    np.testing.assert_array_equal(a['entities'][r], want)


def test_pairs_too_long_are_left_out_and_counted():
  pairs = [(sentence(3, 10), sentence(2, 20)), (sentence(9, 30), sentence(2, 40))]
  rows = ed.nsp_rows(pairs, seq_len=8, seed=0, bos_id=2, eos_id=3)
  assert rows.info['too_long'] >= 1 and len(rows) == 2 - rows.info['too_long']


def test_mentions_align_to_the_first_subword_as_the_linker_does(tiny_config):
  from plm import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  tokenizer = workdir_lib.load_tokenizer(tiny_config, '')
  table = linker.alias_table([('New_York', 'n1', 1), ('dog', 'n2', 1), ('shepherd', 'n3', 1)])
  linking = ed.Linking(table, {'n1': 1, 'n2': 2, 'n3': 3})
  text = 'The shepherds and their dogs went to New York.'
  (s,) = ed.linked_sentences([text], tokenizer, linking)
  assert list(s.ids) == tokenizer.encode(text)
  mentions = linker.link(table, text)
  assert [(f + 1, e) for f, _, e in s.mentions] == [
      (i, linking.entity_ids[k]) for i, k in linker.align_to_subwords(text, mentions, tokenizer)]
  # the last piece ends the mention: 'New York' spans to 'York', not the '.'
  first, last, _ = s.mentions[-1]
  assert tokenizer.decode(s.ids[first:last + 1]).strip() == 'New York'


def test_marked_rows_place_markers_and_shift_entities():
  s = sentence(5, 100, [(1, 2, 7), (4, 4, 9)])
  rows = et.marked_rows([(s, ((1, 2), (4, 4)), 3)], seq_len=12, bos_id=2, eos_id=3, marker=99,
                        num_markers=2)
  a = rows.arrays
  np.testing.assert_array_equal(a['tokens'][0], [2, 100, 99, 101, 102, 99, 103, 99, 104, 99, 3, 0])
  np.testing.assert_array_equal(a['markers'][0], [2, 7])
  np.testing.assert_array_equal(np.flatnonzero(a['entities'][0]), [3, 8])
  assert a['labels'][0] == 3
  broken = dict(a, tokens=np.where(a['tokens'] == 99, 5, a['tokens']))
  with pytest.raises(ValueError, match='lack their marker tokens'):
    et.check_markers(broken, 99)


def test_a_cached_corpus_of_another_graph_or_vocabulary_is_refused(tmp_path):
  path = str(tmp_path / 'pretrain_train.npz')
  key = dict(vocab='v1', graph='g1', format=1, split='train')
  build = lambda: ed.nsp_rows([(sentence(2, 10), sentence(2, 20))] * 4, seq_len=8, seed=0,
                              bos_id=2, eos_id=3)
  first = ed.load_or_build(path, key, build)
  again = ed.load_or_build(path, key, lambda: pytest.fail('rebuilt a valid cache'))
  assert again.fingerprint == first.fingerprint
  for field in ('graph', 'vocab'):
    with pytest.raises(ValueError, match=f'built against {field}'):
      ed.load_or_build(path, dict(key, **{field: 'other'}), build)
