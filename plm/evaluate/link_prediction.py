"""Filtered link prediction: MRR and Hits@1/3/10, on both sides, in bounded memory.

For a test triple (h, r, t) the tail side ranks every entity e as the answer of
(h, r, ?) by the distance ||e_h + w_r - e_e||, the head side every e for (?, r, t)
by ||e_e + w_r - e_t|| = ||e_e - (e_t - w_r)||. Filtered (Bordes et al., 2013): every
other answer that makes a known true triple (train, valid or test) is removed from
the ranking, exactly (a scatter of the known (row, entity) cells to +inf), so only
entities that are not known answers can rank above the true one.

Ties count as the realistic rank (pykeen's default): the expected rank under a
random order of the tied entities, 1 + #closer + #tied / 2. A model that gives
every entity the same vector gets the middle rank, not rank 1.

Memory: `block` test triples at a time against all entities, so the largest array
is the [block, E] distance matrix (256 x 40,943 floats: 42 MB). L1 distances add
up one dimension at a time into it (the [block, E, dim] differences never exist);
L2 goes through one [block, dim] x [dim, E] matmul. Nothing grows with E^2 or with
the number of test triples.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

SIDES = ('tail', 'head')
HITS = (1, 3, 10)


class KnownAnswers:
  """Every known answer of (h, r, ?) and (?, r, t), from the triples [N, 3] of all splits.

  Kept as sorted (query key, answer) arrays: a block's answers are a searchsorted range
  per query, so memory is O(triples) for any graph size.
  """

  def __init__(self, triples: np.ndarray, num_relations: int):
    t = np.unique(np.asarray(triples, np.int64).reshape(-1, 3), axis=0)
    self.num_relations = num_relations
    self.index = {}
    for side, (q, a) in (('tail', (0, 2)), ('head', (2, 0))):
      keys = t[:, q] * num_relations + t[:, 1]
      order = np.lexsort((t[:, a], keys))
      self.index[side] = (keys[order], t[order, a])

  def cells(self, queries: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, entities) of every known answer of each query triple [b, 3] on `side`:
    row i lists the answers of query i (its own answer among them)."""
    keys, answers = self.index[side]
    q = queries[:, 0 if side == 'tail' else 2].astype(np.int64) * self.num_relations
    q = q + queries[:, 1]
    lo, hi = np.searchsorted(keys, q, 'left'), np.searchsorted(keys, q, 'right')
    counts = hi - lo
    rows = np.repeat(np.arange(len(queries)), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    return rows.astype(np.int32), answers[starts + np.arange(counts.sum())].astype(np.int32)


def distances_to_all(queries, entities, norm: int):
  """||q - e|| for every query [b, d] and entity [E, d]: [b, E]."""
  if norm == 1:  # a dimension at a time into a [b, E] sum: vectorised along E, 1.6x the
    # speed of one fused reduce over [b, E, d] (whose inner loop runs along d)
    def add(total, qe):
      return total + jnp.abs(qe[0][:, None] - qe[1][None, :]), None
    zero = jnp.zeros((queries.shape[0], entities.shape[0]), queries.dtype)
    return jax.lax.scan(add, zero, (queries.T, entities.T))[0]
  sq = (jnp.sum(queries ** 2, -1)[:, None] + jnp.sum(entities ** 2, -1)[None, :]
        - 2.0 * queries @ entities.T)
  return jnp.sqrt(jnp.maximum(sq, 0.0))


@functools.partial(jax.jit, static_argnames=('side', 'norm'))
def block_ranks(entities, relations, triples, known_rows, known_cols, *, side: str, norm: int):
  """(optimistic, pessimistic) filtered ranks [b] of a block of triples [b, 3].

  known_rows/known_cols: the cells to filter out (padding rows >= b are dropped).
  """
  h, r, t = entities[triples[:, 0]], relations[triples[:, 1]], entities[triples[:, 2]]
  query, answer = (h + r, triples[:, 2]) if side == 'tail' else (t - r, triples[:, 0])
  dist = distances_to_all(query, entities, norm)  # [b, E]
  true = jnp.take_along_axis(dist, answer[:, None], axis=1)
  dist = dist.at[known_rows, known_cols].set(jnp.inf, mode='drop')
  dist = dist.at[jnp.arange(len(answer)), answer].set(jnp.inf)  # even if not a known triple
  closer = jnp.sum(dist < true, axis=1)
  tied = jnp.sum(dist == true, axis=1)
  return 1 + closer, 1 + closer + tied


def bucket(n: int, least: int = 256) -> int:
  """n rounded up to a power of two (at least `least`): few distinct compiled shapes."""
  return max(least, 1 << max(n - 1, 0).bit_length())


def ranks(entities, relations, triples: np.ndarray, known: KnownAnswers, *, norm: int,
          block: int = 256) -> dict[str, np.ndarray]:
  """Realistic filtered ranks {side: float [N]} of every triple [N, 3] on both sides."""
  triples = np.asarray(triples, np.int32).reshape(-1, 3)
  n = len(triples)
  out = {}
  for side in SIDES:
    got = []
    for start in range(0, n, block):
      chunk = triples[start:start + block]
      rows, cols = known.cells(chunk, side)
      size = bucket(len(rows))
      pad = size - len(rows)
      rows = np.concatenate([rows, np.full((pad,), block, np.int32)])  # out of range: dropped
      cols = np.concatenate([cols, np.zeros((pad,), np.int32)])
      padded = np.concatenate([chunk, np.zeros((block - len(chunk), 3), np.int32)])
      opt, pes = block_ranks(entities, relations, padded, rows, cols, side=side, norm=norm)
      got.append(((np.asarray(opt) + np.asarray(pes)) / 2.0)[:len(chunk)])
    out[side] = np.concatenate(got) if got else np.zeros((0,), np.float64)
  return out


def metrics(side_ranks: dict[str, np.ndarray]) -> dict:
  """MRR and Hits@1/3/10 per side and over both ('both': the usual headline)."""
  def summary(r):
    if not len(r):
      return dict(mrr=float('nan'), **{f'hits@{k}': float('nan') for k in HITS}, count=0,
                  mean_rank=float('nan'))
    return dict(mrr=float(np.mean(1.0 / r)), **{f'hits@{k}': float(np.mean(r <= k))
                                                for k in HITS},
                mean_rank=float(np.mean(r)), count=int(len(r)))
  table = {side: summary(r) for side, r in side_ranks.items()}
  table['both'] = summary(np.concatenate([side_ranks[s] for s in SIDES]))
  return table


def evaluate(entities, relations, triples, known: KnownAnswers, *, norm: int,
             block: int = 256) -> dict:
  """The filtered metrics table of `triples` (see `metrics`)."""
  return metrics(ranks(entities, relations, triples, known, norm=norm, block=block))


def format_table(tables: dict[str, dict]) -> str:
  """{name: metrics table} as Markdown, one row per name and side."""
  lines = ['| set | side | MRR | Hits@1 | Hits@3 | Hits@10 | mean rank | triples |',
           '|---|---|---|---|---|---|---|---|']
  for name, table in tables.items():
    for side in ('both',) + SIDES:
      m = table[side]
      lines.append(f"| {name} | {side} | {m['mrr']:.4f} | {m['hits@1']:.4f} | "
                   f"{m['hits@3']:.4f} | {m['hits@10']:.4f} | {m['mean_rank']:.1f} | "
                   f"{m['count']} |")
  return '\n'.join(lines)
