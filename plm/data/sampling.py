"""XLM's language sampling: q_i ∝ p_i^alpha (Lample & Conneau 2019, section 3.1).

p_i is language i's share of the data. alpha < 1 flattens the distribution, so
a low-resource language is seen more often than its share (alpha = 1 is
proportional sampling, alpha = 0 uniform). XLM samples with alpha = 0.5 for the
joint BPE vocabulary and alpha = 0.7 for training batches.

plm samples by default. XLM's own code leaves it off unless a flag is given
(`--lg_sampling_factor -1`), a known trap: a run that forgets the flag trains
on the raw shares and under-serves the smaller languages.
"""
from collections.abc import Mapping, Sequence

import numpy as np

from plm.errors import UserError


def language_probs(sizes: Sequence[float], alpha: float) -> np.ndarray:
  """q_i = p_i^alpha / sum_j p_j^alpha with p_i = sizes_i / sum(sizes)."""
  sizes = np.asarray(sizes, np.float64)
  if alpha < 0:
    raise UserError(f'sampling alpha={alpha} must be >= 0 (1 = proportional, 0 = uniform); '
                    'fix data.vocab_alpha / data.language_alpha in the config')
  if not len(sizes) or np.any(sizes <= 0):
    raise UserError(f'every language needs data to sample from, got sizes {sizes.tolist()}')
  p = sizes / sizes.sum()
  q = p ** alpha
  return q / q.sum()


def vocab_sentences(texts: Mapping[str, list[list[str]]], alpha: float, seed: int = 0
                    ) -> list[str]:
  """The sentences the joint BPE is trained on: language i gets q_i of them.

  The total stays the corpus's sentence count; a language is drawn without
  replacement up to its size, and repeated whole beyond it (upsampling).

  Args:
    texts: documents of sentences per language (pipeline.load_texts).
    alpha: data.vocab_alpha (XLM: 0.5).
    seed: the draw is a pure function of it.
  """
  sentences = {lang: [s for doc in docs for s in doc if s.strip()]
               for lang, docs in texts.items()}
  langs = list(sentences)
  sizes = [len(sentences[l]) for l in langs]
  if not sum(sizes):
    return []
  q = language_probs([max(n, 1e-12) for n in sizes], alpha)
  rng = np.random.default_rng(seed)
  out = []
  for lang, n, q_i in zip(langs, sizes, q):
    want = int(round(q_i * sum(sizes))) if n else 0
    whole, rest = divmod(want, n) if n else (0, 0)
    picked = np.concatenate([np.tile(np.arange(n), whole),
                             np.sort(rng.choice(n, rest, replace=False))]).astype(int)
    out.extend(sentences[lang][i] for i in picked)
  return out
