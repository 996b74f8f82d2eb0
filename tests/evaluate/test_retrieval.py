"""Cross-lingual retrieval metrics on hand-made embeddings with known answers."""
import numpy as np
import pytest

from plm.evaluate import retrieval


def test_known_ranks_both_directions():
  # a[i] is closest to b[i] except a[2], closest to b[0]; scale must not matter.
  a = np.array([[1, 0, 0], [0, 1, 0], [0.9, 0, 0.1], [0, 0, 1]], np.float32)
  b = np.array([[5, 0, 0], [0, 2, 0.1], [0, 0.1, 1], [0, 0, 3]], np.float32)
  sims = retrieval.cosine_similarities(a, b)
  np.testing.assert_allclose(sims[0], [1, 0, 0, 0], atol=1e-12)
  m = retrieval.retrieval_metrics(a, b)
  # a[2] ranks b: b[0] (0.994), b[3] (0.110), b[2] (0.110 * 0.995): gold b[2] is third.
  assert retrieval.gold_ranks(sims).tolist() == [1, 1, 3, 1]
  assert m['a_to_b'] == dict(p_at_1=0.75, mean_rank=1.5, median_rank=1.0, pairs=4)
  # b[2] ranks a: a[3] (0.995) above a[2] (0.110); b[3] ranks a[3] first.
  assert retrieval.gold_ranks(sims.T).tolist() == [1, 1, 2, 1]
  assert m['b_to_a'] == dict(p_at_1=0.75, mean_rank=1.25, median_rank=1.0, pairs=4)


def test_reference_implementation_on_random_vectors():
  rng = np.random.RandomState(0)
  a, b = rng.randn(30, 8), rng.randn(30, 8)
  b[:20] = a[:20] + 0.3 * rng.randn(20, 8)  # 20 near translations, 10 unrelated
  m = retrieval.retrieval_metrics(a, b)
  for direction, (x, y) in {'a_to_b': (a, b), 'b_to_a': (b, a)}.items():
    ranks = []
    for i in range(len(x)):
      cos = [x[i] @ y[j] / np.linalg.norm(x[i]) / np.linalg.norm(y[j]) for j in range(len(y))]
      ranks.append(1 + sorted(cos, reverse=True).index(cos[i]))  # no ties in random data
    assert m[direction]['p_at_1'] == pytest.approx(np.mean(np.array(ranks) == 1))
    assert m[direction]['mean_rank'] == pytest.approx(np.mean(ranks))
    assert m[direction]['median_rank'] == pytest.approx(np.median(ranks))
  assert m['a_to_b']['p_at_1'] > 0.6


def test_identical_vectors_retrieve_all_and_unrelated_ones_are_at_chance():
  rng = np.random.RandomState(2)
  n = 200
  a = rng.randn(n, 16)
  perfect = dict(p_at_1=1.0, mean_rank=1.0, median_rank=1.0, pairs=n)
  assert retrieval.retrieval_metrics(a, a) == dict(a_to_b=perfect, b_to_a=perfect)
  assert retrieval.retrieval_metrics(a, 3.0 * a)['a_to_b'] == perfect  # cosine: scale-free
  # Unrelated vectors: the gold's rank is uniform on 1..n (P@1 1/n, mean rank (n + 1) / 2).
  m = retrieval.retrieval_metrics(a, rng.randn(n, 16))
  for direction in ('a_to_b', 'b_to_a'):
    assert m[direction]['p_at_1'] <= 0.03, m  # 1/200 expected; 6 hits is p < 0.001
    # The mean of n uniform ranks has standard deviation n / sqrt(12 n) ~ 4.1.
    assert abs(m[direction]['mean_rank'] - (n + 1) / 2) < 20, m
  # The same vectors paired in another order: a shuffle loses (almost) every gold.
  order = rng.permutation(n)
  assert retrieval.retrieval_metrics(a, a[order])['a_to_b']['p_at_1'] == np.mean(
      order == np.arange(n))


def test_centering_removes_a_language_offset():
  rng = np.random.RandomState(1)
  a = rng.randn(20, 6)
  b = a + 0.05 * rng.randn(20, 6)
  a_shifted, b_shifted = a + 50.0, b - 50.0  # what one language's embedding adds to all
  assert retrieval.retrieval_metrics(a, b)['a_to_b']['p_at_1'] == 1.0
  assert retrieval.retrieval_metrics(a_shifted, b_shifted)['a_to_b']['p_at_1'] < 0.5
  centered = retrieval.retrieval_metrics(a_shifted, b_shifted, center=True)
  assert centered == retrieval.retrieval_metrics(a - a.mean(0), b - b.mean(0))
  assert centered['a_to_b']['p_at_1'] == centered['b_to_a']['p_at_1'] == 1.0


def test_ties_count_against_the_gold_whatever_the_order():
  # Collapsed embeddings: every candidate ties, so nothing is retrieved.
  same = np.ones((5, 4))
  m = retrieval.retrieval_metrics(same, same)
  assert m['a_to_b'] == dict(p_at_1=0.0, mean_rank=5.0, median_rank=5.0, pairs=5)
  # b[0] == b[1]: rows 0 and 1 tie; rows 2 and 3 are unaffected. Same under reordering.
  a = np.array([[1, 0, 0], [1, 0.1, 0], [0, 1, 0], [0, 0, 1]])
  b = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
  assert retrieval.gold_ranks(retrieval.cosine_similarities(a, b)).tolist() == [2, 2, 1, 1]
  order = [3, 1, 2, 0]
  assert retrieval.gold_ranks(retrieval.cosine_similarities(a[order], b[order])).tolist() == [
      1, 2, 1, 2]


def test_unique_pairs_drops_every_pair_with_a_repeated_text():
  pairs = [('a', 'x'), ('b', 'y'), ('a', 'z'), ('c', 'y'), ('d', 'w')]
  assert retrieval.unique_pairs(pairs) == [('d', 'w')]
  assert retrieval.unique_pairs([('a', 'x'), ('b', 'y')]) == [('a', 'x'), ('b', 'y')]


def test_bad_input_is_one_clear_error():
  with pytest.raises(ValueError, match='same number'):
    retrieval.retrieval_metrics(np.ones((3, 2)), np.ones((2, 2)))
  with pytest.raises(ValueError, match='same number'):
    retrieval.retrieval_metrics(np.ones((0, 2)), np.ones((0, 2)))
  with pytest.raises(ValueError, match=r'same H; got \(2, 2\) and \(2, 3\)'):
    retrieval.retrieval_metrics(np.ones((2, 2)), np.ones((2, 3)))
  with pytest.raises(ValueError, match='NaN or inf'):
    retrieval.retrieval_metrics(np.array([[np.nan, 1]]), np.ones((1, 2)))
