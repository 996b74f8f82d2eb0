"""Filtered link prediction (plm/evaluate/link_prediction.py): hand-made ranks, exact
filtering, realistic ties, and blocked evaluation against a brute-force reference."""
import numpy as np
import pytest

from plm.evaluate import link_prediction as lp

# Points in the plane (L1 distances are easy to add up by hand) and one relation (1, 0).
ENTITIES = np.array([[0, 0], [3, 0], [1, 0], [2, 0], [0, 3], [1, 2]], np.float32)
RELATIONS = np.array([[1, 0]], np.float32)
TEST = np.array([[0, 0, 1]])
# (0, r, 2) is a known true triple (train) and so is (3, r, 1) (valid): both are filtered.
KNOWN = np.array([[0, 0, 2], [3, 0, 1], [0, 0, 1]])


def test_hand_made_filtered_ranks_both_sides():
  known = lp.KnownAnswers(KNOWN, 1)
  got = lp.ranks(ENTITIES, RELATIONS, TEST, known, norm=1, block=4)
  # tail side: query e0 + r = (1, 0); L1 distances e0..e5 = 1, 2, 0, 1, 4, 2; answer e1 at 2.
  # e2 (0) is a known answer: filtered. Closer and not known: e0, e3. Tied: e5 -> 1 + 2 + 1/2.
  assert got['tail'].tolist() == [3.5]
  # head side: query e1 - r = (2, 0); distances 2, 1, 1, 0, 5, 3; answer e0 at 2.
  # e3 (0) is a known head of (?, r, e1): filtered. Closer: e1, e2. No ties -> 3.
  assert got['head'].tolist() == [3.0]
  table = lp.metrics(got)
  assert table['both']['mrr'] == pytest.approx((1 / 3.5 + 1 / 3) / 2)
  assert table['both']['hits@3'] == 0.5 and table['both']['hits@1'] == 0.0
  assert table['tail']['hits@10'] == table['head']['hits@10'] == 1.0
  assert table['both']['count'] == 2


def test_filtering_removes_exactly_the_known_answers():
  """Raw ranks (only the answer known) are the filtered ones plus the known closer entities."""
  raw = lp.ranks(ENTITIES, RELATIONS, TEST, lp.KnownAnswers(TEST, 1), norm=1)
  assert raw['tail'].tolist() == [4.5]  # e2 counts now
  assert raw['head'].tolist() == [4.0]  # e3 counts now
  # A known triple of another relation or of the other side filters nothing here.
  other = np.concatenate([TEST, [[0, 1, 2], [2, 0, 0]]])
  kept = lp.ranks(ENTITIES, np.concatenate([RELATIONS, RELATIONS]), TEST,
                  lp.KnownAnswers(other, 2), norm=1)
  assert kept['tail'].tolist() == [4.5] and kept['head'].tolist() == [4.0]


def test_known_answers_cells():
  known = lp.KnownAnswers(np.array([[0, 0, 2], [0, 0, 1], [3, 0, 1], [0, 1, 4], [0, 0, 2]]), 2)
  rows, cols = known.cells(np.array([[0, 0, 1], [5, 0, 1], [0, 1, 9]]), 'tail')
  assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (0, 2), (2, 4)]
  rows, cols = known.cells(np.array([[9, 0, 1], [0, 0, 2]]), 'head')
  assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 0), (0, 3), (1, 0)]


def test_equal_vectors_give_the_middle_rank():
  """Realistic ties: every entity at one point ranks (E + 1) / 2 after filtering nothing."""
  entities = np.ones((9, 4), np.float32)
  got = lp.ranks(entities, np.zeros((1, 4), np.float32), np.array([[0, 0, 5]]),
                 lp.KnownAnswers(np.array([[0, 0, 5]]), 1), norm=2)
  assert got['tail'].tolist() == got['head'].tolist() == [5.0]  # 1 + 8 tied / 2


def brute_force(entities, relations, triples, known, norm):
  """The definition, one triple and one entity at a time (integer coordinates: every
  distance is exact in float32, so it equals the blocked arithmetic bit for bit)."""
  known = {tuple(t) for t in known.tolist()}
  out = {'tail': [], 'head': []}
  for h, r, t in triples.tolist():
    for side in out:
      query = entities[h] + relations[r] if side == 'tail' else entities[t] - relations[r]
      diff = query[None] - entities
      dist = np.abs(diff).sum(1) if norm == 1 else np.sqrt(np.square(diff).sum(1))
      answer = t if side == 'tail' else h
      closer = tied = 0
      for e in range(len(entities)):
        triple = (h, r, e) if side == 'tail' else (e, r, t)
        if e == answer or triple in known:
          continue
        closer += dist[e] < dist[answer]
        tied += dist[e] == dist[answer]
      out[side].append(1 + closer + tied / 2)
  return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize('norm', [1, 2])
def test_blocked_equals_unblocked_equals_brute_force(norm):
  rng = np.random.default_rng(norm)
  num_entities, num_relations = 23, 3
  # small integer coordinates: many exact ties, so tie handling is checked too
  entities = rng.integers(-2, 3, (num_entities, 4)).astype(np.float32)
  relations = rng.integers(-1, 2, (num_relations, 4)).astype(np.float32)
  triples = np.stack([rng.integers(0, num_entities, 60), rng.integers(0, num_relations, 60),
                      rng.integers(0, num_entities, 60)], 1)
  test, known = triples[:13], lp.KnownAnswers(triples, num_relations)
  whole = lp.ranks(entities, relations, test, known, norm=norm, block=64)
  for block in (1, 4, 5):
    parts = lp.ranks(entities, relations, test, known, norm=norm, block=block)
    for side in lp.SIDES:
      np.testing.assert_array_equal(parts[side], whole[side])
  reference = brute_force(entities, relations, test, triples, norm)
  for side in lp.SIDES:
    np.testing.assert_array_equal(whole[side], reference[side])
  assert np.any(whole['tail'] % 1 == 0.5)  # some ties were split


def test_l1_distances_match_numpy():
  rng = np.random.default_rng(0)
  q, e = rng.normal(size=(5, 7)).astype(np.float32), rng.normal(size=(11, 7)).astype(np.float32)
  np.testing.assert_allclose(lp.distances_to_all(q, e, 1),
                             np.abs(q[:, None] - e[None]).sum(-1), rtol=1e-5)
  np.testing.assert_allclose(lp.distances_to_all(q, e, 2),
                             np.linalg.norm(q[:, None] - e[None], axis=-1), rtol=1e-4)


def test_format_table():
  table = lp.metrics({'tail': np.array([1.0, 2.0]), 'head': np.array([4.0, 20.0])})
  text = lp.format_table({'test': table})
  assert '| test | both | 0.4500 | 0.2500 | 0.5000 | 0.7500 | 6.8 | 4 |' in text
