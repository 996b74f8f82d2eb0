"""Scoring generated text: BLEU and chrF (sacrebleu, with its signatures), and the
baselines a score needs beside it: copying the source, and a word-by-word
dictionary built from the training pairs. The generate and mt jobs both use it.

The dictionary maps each source word to the target word with the highest Dice
coefficient of sentence co-occurrence, 2 c(s, t) / (c(s) + c(t)), over the
training pairs (words are whitespace tokens, lowercased; punctuation stays on
the word). A word never seen in training is copied.
"""
import collections

import sacrebleu


def scores(hyps: list[str], refs: list[str]) -> dict:
  """Corpus BLEU and chrF of `hyps` against one reference each, with the signatures."""
  bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
  return dict(bleu=bleu.corpus_score(hyps, [refs]).score,
              chrf=chrf.corpus_score(hyps, [refs]).score,
              signature=dict(bleu=str(bleu.get_signature()), chrf=str(chrf.get_signature())))


def with_baselines(hyps: list[str], sources: list[str], refs: list[str],
                   dictionary: dict[str, str]) -> dict:
  """scores() of the model's `hyps`, of copying the source and of the word-by-word
  `dictionary` (word_dictionary of the training pairs), keyed model / copy_source /
  word_dictionary."""
  return dict(model=scores(hyps, refs), copy_source=scores(sources, refs),
              word_dictionary=scores(translate_words(sources, dictionary), refs))


def words(sentence: str) -> list[str]:
  return sentence.lower().split()


def word_dictionary(pairs, min_count: int = 2) -> dict[str, str]:
  """{source word: best target word} from (source, target) sentence pairs."""
  src_count, tgt_count, both = collections.Counter(), collections.Counter(), collections.Counter()
  for src, tgt in pairs:
    s, t = set(words(src)), set(words(tgt))
    src_count.update(s)
    tgt_count.update(t)
    both.update((a, b) for a in s for b in t)
  best = {}
  for (a, b), c in both.items():
    if c < min_count:
      continue
    dice = 2 * c / (src_count[a] + tgt_count[b])
    if dice > best.get(a, (0.0, ''))[0] or (dice == best[a][0] and b < best[a][1]):
      best[a] = (dice, b)
  return {a: b for a, (_, b) in best.items()}


def translate_words(sentences, dictionary: dict[str, str]) -> list[str]:
  """Each word replaced by its dictionary entry (unknown words kept)."""
  return [' '.join(dictionary.get(w, w) for w in words(s)) for s in sentences]
