"""Margin-based bitext mining (LASER): hand-computed margins, planted pairs among hubs, the
blocked k-NN against a dense reference, and the retrieval strategies on a hand case."""
import numpy as np
import pytest

from plm.evaluate import mining, retrieval


def unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def with_cosines(c):
  """x [N, N+M] and y [M, N+M] unit rows with cos(x_i, y_j) = c[i, j] exactly."""
  c = np.asarray(c, np.float64)
  n, m = c.shape
  x = np.eye(n, n + m)
  y = np.zeros((m, n + m))
  y[:, :n] = c.T
  y[np.arange(m), n + np.arange(m)] = np.sqrt(1 - (c ** 2).sum(0))  # each y's own direction
  return x, y


def dense_knn(x, y, k):
  sims = retrieval.cosine_similarities(x, y)
  ids = np.argsort(-sims, axis=1, kind='stable')[:, :k]
  return np.take_along_axis(sims, ids, 1), ids


# x0 = (1, 0), x1 = (0, 1); y0 = (1, 0), y1 = (0.6, 0.8), y2 = (0, 1); cosines
#   x0: 1   0.6  0        x's 2 nearest in y: x0 (1, 0.6) mean 0.8, x1 (1, 0.8) mean 0.9
#   x1: 0   0.8  1        y's 2 nearest in x: y0 (1, 0) 0.5, y1 (0.8, 0.6) 0.7, y2 (1, 0) 0.5
HAND_X = np.array([[1, 0], [0, 1]], np.float32)
HAND_Y = np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)


@pytest.mark.parametrize('margin, expected', [
    # (x0, y0): b = (0.8 + 0.5) / 2 = 0.65; (x0, y1): b = (0.8 + 0.7) / 2 = 0.75;
    # (x1, y2): b = (0.9 + 0.5) / 2 = 0.7;  (x1, y1): b = (0.9 + 0.7) / 2 = 0.8.
    ('ratio', [[1 / 0.65, 0.6 / 0.75], [1 / 0.7, 0.8 / 0.8]]),
    ('distance', [[1 - 0.65, 0.6 - 0.75], [1 - 0.7, 0.8 - 0.8]]),
    ('absolute', [[1, 0.6], [1, 0.8]]),
])
def test_margin_scores_by_hand(margin, expected):
  c = mining.margin_scores(HAND_X, HAND_Y, k=2, margin=margin, backend='jnp')
  np.testing.assert_allclose(c['fwd_mean'], [0.8, 0.9], atol=1e-6)
  np.testing.assert_allclose(c['bwd_mean'], [0.5, 0.7, 0.5], atol=1e-6)
  assert c['fwd_ids'].tolist() == [[0, 1], [2, 1]]
  np.testing.assert_allclose(c['fwd_scores'], expected, atol=1e-6)
  # y1's candidates are x1 (0.8) then x0 (0.6): the same two pairs scored the same way back.
  assert c['bwd_ids'][1].tolist() == [1, 0]
  np.testing.assert_allclose(c['bwd_scores'][1], [expected[1][1], expected[0][1]], atol=1e-6)
  np.testing.assert_allclose(
      mining.score_pairs(HAND_X, HAND_Y, [(0, 0), (1, 1), (0, 2)], k=2, margin=margin,
                         backend='jnp'),
      [expected[0][0], expected[1][1], 0.0 if margin != 'distance' else 0 - (0.8 + 0.5) / 2],
      atol=1e-6)


# Cosines chosen so that the four strategies all differ (absolute margin: score = cosine).
MODES_C = [[0.5, 0.1, 0.0],
           [0.6, 0.4, 0.0],
           [0.0, 0.3, 0.2]]


@pytest.mark.parametrize('retrieval_mode, expected', [
    ('forward', [(0.6, 1, 0), (0.5, 0, 0), (0.3, 2, 1)]),  # each x's best y
    ('backward', [(0.6, 1, 0), (0.4, 1, 1), (0.2, 2, 2)]),  # each y's best x
    ('intersect', [(0.6, 1, 0)]),  # x0 -> y0 but y0 -> x1; x2 -> y1 but y1 -> x1
    # pooled by score: (1,0) taken; (0,0) y0 used; (1,1) x1 used; (2,1) taken; (2,2) x2 used
    ('max', [(0.6, 1, 0), (0.3, 2, 1)]),
])
def test_retrieval_modes_by_hand(retrieval_mode, expected):
  x, y = with_cosines(MODES_C)
  got = mining.mine(x, y, k=3, margin='absolute', retrieval=retrieval_mode, backend='jnp')
  assert [(i, j) for _, i, j in got] == [(i, j) for _, i, j in expected]
  np.testing.assert_allclose([s for s, _, _ in got], [s for s, _, _ in expected], atol=1e-6)
  kept = mining.mine(x, y, k=3, margin='absolute', retrieval=retrieval_mode, threshold=0.45,
                     backend='jnp')
  assert [(i, j) for _, i, j in kept] == [(i, j) for s, i, j in expected if s >= 0.45]


def planted(seed, n=200, d=64, pairs=50, hubs=3):
  """x rows share an offset u (as one language's vectors do); y[:hubs] lie near u, so
  they are close to every x; `pairs` y rows are noisy copies of x rows' content."""
  rng = np.random.RandomState(seed)
  u = unit(rng.randn(d))
  content = unit(rng.randn(n, d))
  x, y = unit(u + content), unit(rng.randn(n, d))
  src = rng.choice(n, pairs, replace=False)
  trg = hubs + rng.choice(n - hubs, pairs, replace=False)
  y[trg] = unit(content[src] + 0.5 * unit(rng.randn(pairs, d)))
  y[:hubs] = unit(u + 0.3 * unit(rng.randn(hubs, d)))
  return x.astype(np.float32), y.astype(np.float32), set(zip(src.tolist(), trg.tolist()))


def test_margin_mines_planted_pairs_that_cosine_loses_to_hubs():
  x, y, gold = planted(0)
  sims = retrieval.cosine_similarities(x, y)
  hub_wins = [i for i, j in gold if sims[i, :3].max() > sims[i, j]]
  assert len(hub_wins) > len(gold) // 2  # the setup: a hub beats the partner by cosine

  cosine = mining.mine(x, y, margin='absolute', retrieval='forward', backend='jnp')
  picks = {i: j for _, i, j in cosine}
  assert sum(picks[i] < 3 for i in hub_wins) == len(hub_wins)  # cosine picks the hub
  ratio = mining.mine(x, y, margin='ratio', retrieval='forward', backend='jnp')
  picks = {i: j for _, i, j in ratio}
  assert all(picks[i] == j for i, j in gold)  # the margin picks the partner, every time
  top = {(i, j) for _, i, j in ratio[:len(gold)]}
  assert len(top & gold) == len(gold)  # and scores the planted pairs above all others
  assert len({(i, j) for _, i, j in cosine[:len(gold)]} & gold) < len(gold) // 2

  mined = mining.mine(x, y, margin='ratio', retrieval='max', backend='jnp')
  assert len({i for _, i, _ in mined}) == len(mined) == len({j for _, _, j in mined})
  everything = mining.f1_against_gold(mined, gold)
  assert everything['recall'] == 1.0 and everything['precision'] == len(gold) / len(mined)
  best = mining.best_threshold([(s, (i, j) in gold) for s, i, j in mined], len(gold))
  assert best['f1'] == 1.0
  kept = mining.mine(x, y, margin='ratio', threshold=best['threshold'], backend='jnp')
  assert mining.f1_against_gold(kept, gold)['f1'] == 1.0


@pytest.mark.parametrize('n, m, k, block', [
    (103, 57, 5, 10), (57, 103, 3, 16), (20, 9, 9, 4), (31, 40, 2, 1000),  # plain top k
    (700, 500, 5, 256), (300, 1000, 2, 4096),  # top k inside chunks of 32, padded blocks
])
def test_blocked_knn_matches_dense_reference(n, m, k, block):
  rng = np.random.RandomState(n)
  x, y = rng.randn(n, 12), rng.randn(m, 12) * 3
  x[4] = 0  # a zero vector has similarity 0 with everything
  sims, ids = mining.knn(x, y, k, block=block, backend='jnp')
  ref_sims, ref_ids = dense_knn(x, y, k)
  assert sims.dtype == np.float32 and ids.shape == (n, k)
  np.testing.assert_array_equal(ids[np.arange(n) != 4], ref_ids[np.arange(n) != 4])
  np.testing.assert_allclose(sims, ref_sims, atol=1e-5)
  np.testing.assert_array_equal(sims[4], 0)
  # The reverse direction comes from the same blocks' columns.
  c = mining.margin_scores(x, y, k=k, margin='absolute', backend='jnp', block=block)
  ref_sims, ref_ids = dense_knn(y, x, min(k, n))
  np.testing.assert_array_equal(c['bwd_ids'][:, 1:], ref_ids[:, 1:])  # col 0 may be x[4]'s 0
  np.testing.assert_allclose(c['bwd_scores'], ref_sims, atol=1e-5)


def test_faiss_and_jnp_give_the_same_neighbours():
  pytest.importorskip('faiss')
  rng = np.random.RandomState(1)
  x, y = rng.randn(150, 16), rng.randn(130, 16)
  ref_sims, _ = dense_knn(x, y, 5)
  assert np.diff(-ref_sims, axis=1).min() > 1e-5  # distinct similarities: one right answer
  for k in (1, 5):
    fs, fi = mining.knn(x, y, k, backend='faiss')
    js, ji = mining.knn(x, y, k, backend='jnp', block=32)
    np.testing.assert_array_equal(fi, ji)
    np.testing.assert_allclose(fs, js, atol=1e-5)
  pairs = [mining.mine(x, y, backend=b, block=32) for b in ('faiss', 'jnp')]
  assert [p[1:] for p in pairs[0]] == [p[1:] for p in pairs[1]]
  np.testing.assert_allclose([p[0] for p in pairs[0]], [p[0] for p in pairs[1]], atol=1e-5)


def test_xsim_error_absolute_counts_hub_errors_that_ratio_fixes():
  # u, e0..e2, f0..f2: x_i = 0.6 u + 0.8 e_i, y_i = 0.7 e_i + ... f_i (cos 0.56), x3 = y3 = u.
  # By cosine x0..x2 all prefer y3 (0.6). Ratio, k=2: x_i's mean (0.6 + 0.56) / 2 = 0.58,
  # y_i's (0.56 + 0) / 2 = 0.28, y3's (1 + 0.6) / 2 = 0.8: score(x_i, y3) = 0.6 / 0.69,
  # score(x_i, y_i) = 0.56 / 0.43; x3 (mean 0.5) and y3 score 1 / 0.65.
  x, y = np.zeros((4, 7)), np.zeros((4, 7))
  x[:3, 0], x[:3, 1:4], x[3, 0], y[3, 0] = 0.6, 0.8 * np.eye(3), 1, 1
  y[:3, 1:4], y[:3, 4:7] = 0.7 * np.eye(3), np.sqrt(1 - 0.49) * np.eye(3)
  np.testing.assert_allclose(
      mining.score_pairs(x, y, [(0, 3), (0, 0), (3, 3)], k=2, backend='jnp'),
      [0.6 / 0.69, 0.56 / 0.43, 1 / 0.65], atol=1e-6)
  absolute = mining.xsim_error(x, y, backend='jnp')
  assert absolute['a_to_b'] == dict(errors=3, total=4, error_rate=0.75)
  assert absolute['b_to_a'] == dict(errors=0, total=4, error_rate=0.0)
  ratio = mining.xsim_error(x, y, margin='ratio', k=2, backend='jnp')
  assert ratio['a_to_b']['errors'] == ratio['b_to_a']['errors'] == 0


def test_f1_and_best_threshold_by_hand():
  f = mining.f1_against_gold([(0.9, 0, 0), (0.8, 1, 2), (0.1, 2, 1)],
                             [(0, 0), (1, 2), (3, 3), (4, 4)])
  assert (f['precision'], f['recall'], f['true_positives']) == (2 / 3, 0.5, 2)
  assert f['f1'] == pytest.approx(4 / 7)
  # F1 = 2 tp / (kept + gold): 0.9 -> 2/5, 0.8 -> 4/6, 0.7 -> 4/7, 0.6 -> 6/8, 0.5 -> 6/9.
  labels = [(0.9, True), (0.8, True), (0.7, False), (0.6, True), (0.5, False)]
  assert mining.best_threshold(labels, num_gold=4) == dict(threshold=0.6, precision=0.75,
                                                          recall=0.75, f1=0.75)
  # Equal scores are kept or dropped together: >= 0.5 keeps all three, F1 4/6, as >= 1.
  tied = mining.best_threshold([(0.5, True), (0.5, False), (1.0, True), (0.5, False)])
  assert tied['threshold'] == 1.0 and tied['f1'] == pytest.approx(2 / 3)


def test_bad_options_raise_one_clear_error(monkeypatch):
  x, y = HAND_X, HAND_Y
  for kwargs, words in [(dict(margin='cosine'), 'ratio'), (dict(retrieval='fwd'), 'forward'),
                        (dict(backend='torch'), 'jnp'), (dict(k=0), 'positive')]:
    with pytest.raises(ValueError, match=words):
      mining.mine(x, y, **kwargs)
  with pytest.raises(ValueError, match='margin'):
    mining.xsim_error(x, x, margin='cos')
  with pytest.raises(ValueError, match='same number'):
    mining.xsim_error(x, y)
  with pytest.raises(ValueError, match='from 1 to the number of rows of y'):
    mining.knn(x, y, 4)
  with pytest.raises(ValueError, match='same width'):
    mining.knn(x, np.ones((3, 5)), 1)
  with pytest.raises(ValueError, match='NaN'):
    mining.knn(x, y * np.nan, 1)
  with pytest.raises(ValueError, match='block'):
    mining.knn(x, y, 1, block=0, backend='jnp')
  with pytest.raises(ValueError, match='gold'):
    mining.best_threshold([(0.3, False)])
  monkeypatch.setattr(mining, '_faiss', lambda: None)  # as if faiss were not installed
  with pytest.raises(ValueError, match='pip install faiss-cpu'):
    mining.knn(x, y, 1, backend='faiss')
  assert mining.knn(x, y, 1, backend='auto')[1].tolist() == [[0], [2]]  # falls back to jnp
