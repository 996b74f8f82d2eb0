"""Cross-lingual sentence retrieval: find each sentence's translation by cosine.

Given embeddings `a[i]` and `b[i]` of N parallel sentences, every `a[i]` ranks
all of `b` by cosine similarity; the rank of `b[i]` is 1 plus the number of
candidates scored at least as high as it (other than itself). Ties count
against the gold, so a collapsed model (all vectors equal) scores P@1 = 0,
not 1/N or 1, and the result does not depend on the order of the sentences.
Pairs whose texts repeat make the gold ambiguous: `unique_pairs` drops them.
"""
import numpy as np

from plm.errors import UserError


def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[N, H] x [M, H] -> [N, M]; a zero vector has similarity 0 with everything."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise UserError(f'embeddings must be [N, H] and [M, H] with the same H; got {a.shape} '
                    f'and {b.shape}')
  if not (np.isfinite(a).all() and np.isfinite(b).all()):
    raise UserError('embeddings hold NaN or inf; check the checkpoint (a diverged run) and '
                    'embed.pooling')
  unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  return unit(a) @ unit(b).T


def gold_ranks(similarities: np.ndarray) -> np.ndarray:
  """Rank (1 = best) of the diagonal entry in each row; ties count against it."""
  gold = np.diag(similarities)[:, None]
  return (similarities >= gold).sum(axis=1)  # the gold itself counts once


def summarize(ranks: np.ndarray) -> dict:
  return dict(p_at_1=float(np.mean(ranks == 1)), mean_rank=float(np.mean(ranks)),
              median_rank=float(np.median(ranks)), pairs=int(len(ranks)))


def retrieval_metrics(a: np.ndarray, b: np.ndarray, center: bool = False) -> dict:
  """P@1, mean and median rank in both directions: {'a_to_b': ..., 'b_to_a': ...}.

  center=True subtracts each side's mean vector first: it removes what all
  sentences of one language share (Libovický et al., 2020, "On the Language
  Neutrality of Pre-trained Multilingual Representations").
  """
  if len(a) != len(b) or not len(a):
    raise UserError(f'retrieval needs the same number (> 0) of sentences on both sides; got '
                    f'{len(a)} and {len(b)}')
  if center:
    a, b = (np.asarray(x, np.float64) - np.mean(x, axis=0, dtype=np.float64) for x in (a, b))
  sims = cosine_similarities(a, b)
  return dict(a_to_b=summarize(gold_ranks(sims)), b_to_a=summarize(gold_ranks(sims.T)))


def unique_pairs(pairs):
  """The pairs whose first and second texts both occur once among `pairs` (order kept).

  With a repeated text, two candidates are the same sentence and no model can
  tell which one is the gold.
  """
  counts = [{}, {}]
  for pair in pairs:
    for side in (0, 1):
      counts[side][pair[side]] = counts[side].get(pair[side], 0) + 1
  return [p for p in pairs if counts[0][p[0]] == 1 and counts[1][p[1]] == 1]
