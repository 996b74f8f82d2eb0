"""Bitext mining with margin-scored nearest neighbours, as LASER mines (Artetxe & Schwenk,
2019, "Margin-based parallel corpus mining with multilingual sentence embeddings";
facebookresearch/LASER source/mine_bitexts.py and source/xsim.py).

Plain cosine favours hubs: vectors close to everything. The margin compares a pair's
cosine with the average cosine of both sentences' k nearest neighbours on the other side:

  score(x_i, y_j) = margin(cos(x_i, y_j), (mean_k NN(x_i in y) + mean_k NN(y_j in x)) / 2)

with margin 'ratio' (a / b, LASER's default), 'distance' (a - b) or 'absolute' (a, plain
cosine). Candidates are each sentence's k nearest neighbours; `mine` keeps the best one per
sentence in one or both directions. `knn` is exact and blocked, so it runs on 10^5..10^6
vectors per side in bounded memory: with faiss (`IndexFlatIP`) when it is installed, else
in JAX.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from plm.errors import UserError

BACKENDS = ('auto', 'faiss', 'jnp')
MARGINS = {
    'ratio': lambda a, b: a / b,
    'distance': lambda a, b: a - b,
    'absolute': lambda a, b: a,
}
RETRIEVALS = ('max', 'intersect', 'forward', 'backward')
BLOCK = 4096  # rows of x and of y per block: a [4096, 4096] float32 block is 64 MiB


def _check_choice(name: str, value, choices) -> None:
  if value not in choices:
    raise UserError(f'{name}={value!r}: use one of {tuple(choices)}')


def _unit(v, name: str) -> np.ndarray:
  """[N, H] float32 rows scaled to length 1; a zero row stays zero (similarity 0)."""
  v = np.asarray(v, np.float32)
  if v.ndim != 2 or not len(v):
    raise UserError(f'{name} must be [N, H] with N > 0; got shape {v.shape}')
  if not np.isfinite(v).all():
    raise UserError(f'{name} holds NaN or inf; check the checkpoint (a diverged run) and '
                    'embed.pooling')
  return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _units(x, y):
  """Both sides as unit rows of the same width."""
  x, y = _unit(x, 'x'), _unit(y, 'y')
  if x.shape[1] != y.shape[1]:
    raise UserError(f'x and y must have the same width; got {x.shape} and {y.shape}')
  return x, y


def _faiss():
  try:
    import faiss  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return faiss


def _resolve_backend(backend: str) -> str:
  _check_choice('backend', backend, BACKENDS)
  if backend == 'jnp':
    return backend
  if _faiss() is None:
    if backend == 'faiss':
      raise UserError("backend='faiss' but faiss is not installed: pip install faiss-cpu "
                      "(or pip install -e '.[faiss]'), or use backend='jnp'")
    return 'jnp'
  return 'faiss'


# ---- blocked exact k-NN in JAX ---------------------------------------------------------

CHUNK = 32  # a block's top k looks only inside the k chunks of 32 with the largest maxima


def _top_k(s, k: int, axis: int):
  """Top k of [n, m] s along `axis` (1: per row, 0: per column) -> ([*, k], [*, k] ids).

  The k best lie in the k chunks with the largest maxima (any chunk outside them has k
  distinct larger values before it), so one max-reduction over the block and a top k over
  k * CHUNK values replace a full top k: ~2x faster on XLA:CPU. Ties may go either way.
  """
  s = s if axis == 1 else s.T
  n, m = s.shape
  if m % CHUNK or m // CHUNK <= k:
    return jax.lax.top_k(s, k)
  if axis == 1:
    chunks = s.reshape(n, m // CHUNK, CHUNK)
    _, which = jax.lax.top_k(chunks.max(2), k)  # [n, k] chunk ids
    cand = jnp.take_along_axis(chunks, which[:, :, None], 1)  # [n, k, CHUNK]
  else:  # reduce the untransposed block over its rows: no [m, n] copy
    chunks = s.T.reshape(m // CHUNK, CHUNK, n)
    _, which = jax.lax.top_k(chunks.max(1).T, k)
    cand = jnp.take_along_axis(chunks, which.T[:, None, :], 0).transpose(2, 0, 1)
  v, pos = jax.lax.top_k(cand.reshape(n, k * CHUNK), k)
  return v, jnp.take_along_axis(which, pos // CHUNK, 1) * CHUNK + pos % CHUNK


def _merge(best_s, best_i, new_s, new_i, k: int):
  """Top k of [best | new]."""
  s, pos = jax.lax.top_k(jnp.concatenate([best_s, new_s], 1), k)
  return s, jnp.take_along_axis(jnp.concatenate([best_i, new_i], 1), pos, 1)


@functools.partial(jax.jit, static_argnames=('kx', 'ky'), donate_argnums=(0, 1, 2, 3))
def _block_step(row_s, row_i, col_s, col_i, xb, yb, x0, y0, nx, ny, *, kx: int, ky: int):
  """One [bx, by] block of cosines, merged into the running top k of its rows (x's
  neighbours in y, [bx, kx]) and, if ky, of its columns (y's neighbours in x, [by, ky]).

  x0, y0: the block's first global row of x and of y; rows at or past nx, ny are padding.
  """
  s = jnp.dot(xb, yb.T, precision=jax.lax.Precision.HIGHEST)  # [bx, by]; no TF32 on GPUs
  y_ids = y0 + jnp.arange(yb.shape[0])
  v, pos = _top_k(jnp.where(y_ids[None] < ny, s, -jnp.inf), min(kx, yb.shape[0]), 1)
  row_s, row_i = _merge(row_s, row_i, v, y_ids[pos], kx)
  if ky:
    x_ids = x0 + jnp.arange(xb.shape[0])
    v, pos = _top_k(jnp.where(x_ids[:, None] < nx, s, -jnp.inf), min(ky, xb.shape[0]), 0)
    col_s, col_i = _merge(col_s, col_i, v, x_ids[pos], ky)
  return row_s, row_i, col_s, col_i


def _pad_to(v: np.ndarray, rows: int) -> np.ndarray:
  return v if len(v) == rows else np.concatenate([v, np.zeros((rows - len(v), v.shape[1]),
                                                              v.dtype)])


def _block_rows(block: int, n: int) -> int:
  """min(block, n), rounded up to whole chunks above one chunk (padding is masked)."""
  b = min(block, n)
  return b if b <= CHUNK else -(-b // CHUNK) * CHUNK


def _knn_jnp(x, y, kx: int, ky: int, block: int):
  """x's kx nearest rows of y and (ky > 0) y's ky nearest rows of x, from one pass over
  [block, block] tiles: memory O(block^2 + N kx + M ky) beyond the inputs."""
  n, m = len(x), len(y)
  bx, by = _block_rows(block, n), _block_rows(block, m)  # one compiled shape per problem
  col = [(jnp.full((by, max(ky, 1)), -jnp.inf, jnp.float32),
          jnp.full((by, max(ky, 1)), -1, jnp.int32)) for _ in range(0, m, by)]
  row_s, row_i = [], []
  for x0 in range(0, n, bx):
    xb = _pad_to(x[x0:x0 + bx], bx)
    rs, ri = jnp.full((bx, kx), -jnp.inf, jnp.float32), jnp.full((bx, kx), -1, jnp.int32)
    for c, y0 in enumerate(range(0, m, by)):
      yb = _pad_to(y[y0:y0 + by], by)
      rs, ri, cs, ci = _block_step(rs, ri, *col[c], xb, yb, x0, y0, n, m, kx=kx, ky=ky)
      col[c] = (cs, ci)
    row_s.append(np.asarray(rs)[:n - x0])
    row_i.append(np.asarray(ri)[:n - x0])
  fwd = np.concatenate(row_s), np.concatenate(row_i).astype(np.int64)
  if not ky:
    return fwd, None
  bwd = (np.concatenate([np.asarray(s) for s, _ in col])[:m],
         np.concatenate([np.asarray(i) for _, i in col])[:m].astype(np.int64))
  return fwd, bwd


def _knn_faiss(x, y, k: int):
  index = _faiss().IndexFlatIP(x.shape[1])  # exact inner product; rows are unit vectors
  index.add(np.ascontiguousarray(y))
  sims, ids = index.search(np.ascontiguousarray(x), k)
  return sims.astype(np.float32), ids.astype(np.int64)


def _check_k(k, m: int, side: str) -> None:
  if not isinstance(k, (int, np.integer)) or not 1 <= k <= m:
    raise UserError(f'k={k!r}: use an integer from 1 to the number of rows of {side} ({m})')


def _knn_both(x, y, kx: int, ky: int, backend: str, block: int):
  """Unit rows x, y -> ((sims, ids) of x in y, (sims, ids) of y in x or None if ky=0)."""
  if _resolve_backend(backend) == 'faiss':
    return _knn_faiss(x, y, kx), (_knn_faiss(y, x, ky) if ky else None)
  if not isinstance(block, (int, np.integer)) or block < 1:
    raise UserError(f'block={block!r}: use a positive integer (rows per block)')
  return _knn_jnp(x, y, kx, ky, max(int(block), kx, ky))


def knn(x, y, k: int, *, block: int = BLOCK, backend: str = 'auto'):
  """Cosine k nearest neighbours of each row of x among the rows of y.

  x [N, H], y [M, H] (any scale; a zero row has similarity 0 with everything), 1 <= k <= M
  -> (sims [N, k] float32, best first; ids [N, k] int64 rows of y). Exact with either
  backend: 'faiss' (IndexFlatIP), 'jnp' (blocks of `block` rows of x and of y, a running
  top k), 'auto' = faiss if installed, else jnp. Equal similarities may come in any order.
  """
  x, y = _units(x, y)
  _check_k(k, len(y), 'y')
  fwd, _ = _knn_both(x, y, int(k), 0, backend, block)
  return fwd


# ---- margin scores ---------------------------------------------------------------------

def _margin(a, b, margin: str):
  _check_choice('margin', margin, MARGINS)
  with np.errstate(divide='ignore', invalid='ignore'):
    scores = MARGINS[margin](np.asarray(a, np.float64), np.asarray(b, np.float64))
  return np.where(np.isnan(scores), -np.inf, scores)  # 0/0 (zero vectors) is never mined


def margin_scores(x, y, *, k: int = 4, margin: str = 'ratio', backend: str = 'auto',
                  block: int = BLOCK):
  """Margin scores of each sentence's k nearest candidates on the other side.

  x [N, H], y [M, H] -> dict with 'fwd_scores' [N, k'] and 'fwd_ids' [N, k'] (x's
  candidates in y, k' = min(k, M), in cosine order), 'bwd_scores' [M, k''] and 'bwd_ids'
  (y's candidates in x, k'' = min(k, N)), and the neighbourhood means 'fwd_mean' [N],
  'bwd_mean' [M] that the margin divides by (ratio) or subtracts (distance).
  """
  _check_choice('margin', margin, MARGINS)
  x, y = _units(x, y)
  if not isinstance(k, (int, np.integer)) or k < 1:
    raise UserError(f'k={k!r}: use a positive integer (neighbourhood size, LASER uses 4)')
  kx, ky = min(int(k), len(y)), min(int(k), len(x))  # as LASER: never more than there are
  (fs, fi), (bs, bi) = _knn_both(x, y, kx, ky, backend, block)
  fwd_mean, bwd_mean = fs.mean(1, dtype=np.float64), bs.mean(1, dtype=np.float64)
  return dict(fwd_scores=_margin(fs, (fwd_mean[:, None] + bwd_mean[fi]) / 2, margin),
              fwd_ids=fi,
              bwd_scores=_margin(bs, (bwd_mean[:, None] + fwd_mean[bi]) / 2, margin),
              bwd_ids=bi, fwd_mean=fwd_mean, bwd_mean=bwd_mean)


def score_pairs(x, y, pairs, *, k: int = 4, margin: str = 'ratio', backend: str = 'auto',
                block: int = BLOCK) -> np.ndarray:
  """Margin scores [P] of given (i, j) pairs, candidates or not (LASER's `--mode score`)."""
  c = margin_scores(x, y, k=k, margin=margin, backend=backend, block=block)
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  x, y = _units(x, y)
  cos = np.einsum('ph,ph->p', x[pairs[:, 0]], y[pairs[:, 1]])
  return _margin(cos, (c['fwd_mean'][pairs[:, 0]] + c['bwd_mean'][pairs[:, 1]]) / 2, margin)


# ---- mining ----------------------------------------------------------------------------

def _best(scores, ids):
  """Per row: (best margin score, its candidate id); the first of equal scores."""
  a = scores.argmax(1)
  rows = np.arange(len(scores))
  return scores[rows, a], ids[rows, a]


def mine(x, y, *, k: int = 4, margin: str = 'ratio', retrieval: str = 'max',
         threshold: float | None = None, backend: str = 'auto', block: int = BLOCK):
  """Mined pairs [(score, i, j)], best score first: x[i] and y[j] taken as translations.

  retrieval: 'forward' = for every x its best-scored candidate in y; 'backward' = for every
  y its best in x; 'intersect' = the pairs both directions agree on; 'max' (LASER's
  default) = both directions' pairs pooled and taken greedily by score, skipping a pair
  whose x or y is already used, so each sentence appears at most once. threshold: keep
  scores >= threshold (LASER's 'max' keeps > threshold).
  """
  _check_choice('retrieval', retrieval, RETRIEVALS)
  c = margin_scores(x, y, k=k, margin=margin, backend=backend, block=block)
  fs, fj = _best(c['fwd_scores'], c['fwd_ids'])
  bs, bi = _best(c['bwd_scores'], c['bwd_ids'])
  fi, bj = np.arange(len(fs)), np.arange(len(bs))
  if retrieval == 'forward':
    scores, src, trg = fs, fi, fj
  elif retrieval == 'backward':
    scores, src, trg = bs, bi, bj
  elif retrieval == 'intersect':
    keep = bi[fj] == fi  # the score is the same both ways: same cosine, same two means
    scores, src, trg = fs[keep], fi[keep], fj[keep]
  else:
    scores, src, trg = (np.concatenate(v) for v in ((fs, bs), (fi, bi), (fj, bj)))
    keep, seen_src, seen_trg = [], set(), set()
    for p in np.argsort(-scores, kind='stable'):
      if src[p] not in seen_src and trg[p] not in seen_trg:
        seen_src.add(src[p])
        seen_trg.add(trg[p])
        keep.append(p)
    scores, src, trg = scores[keep], src[keep], trg[keep]
  if threshold is not None:
    keep = scores >= threshold
    scores, src, trg = scores[keep], src[keep], trg[keep]
  order = np.argsort(-scores, kind='stable')
  return [(float(scores[p]), int(src[p]), int(trg[p])) for p in order]


def xsim_error(x, y, *, margin: str = 'absolute', k: int = 4, backend: str = 'auto',
               block: int = BLOCK) -> dict:
  """LASER's xSIM on aligned sets (x[i] translates y[i]), x [N, H], y [N, H]: how many
  x rows' best margin-scored y is not y[i], and the same from y to x.

  -> {'a_to_b': {errors, total, error_rate}, 'b_to_a': ...}. margin='absolute' is the
  nearest neighbour by cosine (k is then unused). As in LASER a tie may count as a hit,
  where retrieval.retrieval_metrics counts ties against the gold.
  """
  _check_choice('margin', margin, MARGINS)
  if len(x) != len(y) or not len(x):
    raise UserError(f'xsim needs the same number (> 0) of sentences on both sides; got '
                    f'{len(x)} and {len(y)}')
  c = margin_scores(x, y, k=1 if margin == 'absolute' else k, margin=margin,
                    backend=backend, block=block)
  gold = np.arange(len(x))
  result = {}
  for name, side in (('a_to_b', 'fwd'), ('b_to_a', 'bwd')):
    errors = int(np.sum(_best(c[f'{side}_scores'], c[f'{side}_ids'])[1] != gold))
    result[name] = dict(errors=errors, total=len(x), error_rate=errors / len(x))
  return result


# ---- evaluation against gold pairs (BUCC) ----------------------------------------------

def f1_against_gold(mined_pairs, gold_pairs) -> dict:
  """Precision, recall and F1 of mined pairs ((score, i, j) or (i, j)) against gold (i, j)
  pairs, as BUCC scores mining: recall counts gold pairs never proposed too."""
  mined = {tuple(int(v) for v in p[-2:]) for p in mined_pairs}
  gold = {tuple(int(v) for v in p[-2:]) for p in gold_pairs}
  tp = len(mined & gold)
  precision = tp / len(mined) if mined else 0.0
  recall = tp / len(gold) if gold else 0.0
  f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
  return dict(precision=precision, recall=recall, f1=f1, true_positives=tp,
              mined=len(mined), gold=len(gold))


def best_threshold(scores_with_labels, num_gold: int | None = None) -> dict:
  """The F1-optimal threshold on a validation set (BUCC practice: tune it there, apply it
  to the test set with `mine(..., threshold=...)`).

  scores_with_labels: (score, is_gold) per mined pair, e.g. from `mine` and the gold set.
  num_gold: gold pairs in all (default: the labelled positives); gold pairs that were
  never mined lower recall at every threshold. -> {threshold, precision, recall, f1}:
  keeping scores >= threshold gives that F1; the highest such threshold wins a tie.
  """
  data = sorted(((float(s), bool(l)) for s, l in scores_with_labels), key=lambda t: -t[0])
  scores = np.array([s for s, _ in data])
  labels = np.array([l for _, l in data], bool)
  gold = int(labels.sum()) if num_gold is None else int(num_gold)
  if not gold or not labels.any():
    raise UserError('best_threshold needs at least one gold (True) pair among the scored '
                    'pairs; mine the validation set with more candidates (lower threshold)')
  tp = np.cumsum(labels)
  kept = np.arange(1, len(scores) + 1)
  ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))  # last of equal scores
  f1 = 2 * tp[ends] / (kept[ends] + gold)
  e = ends[int(np.argmax(f1))]
  return dict(threshold=float(scores[e]), precision=float(tp[e] / kept[e]),
              recall=float(tp[e] / gold), f1=float(2 * tp[e] / (kept[e] + gold)))
