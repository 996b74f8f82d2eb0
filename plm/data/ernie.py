"""ERNIE's linked corpus: sentence pairs of the English Bible (KJV) and WordNet's glosses, with
the WordNet entities of the offline linker aligned to first subwords, as rows.

  sentences = linked_sentences(texts, tokenizer, linking)   # ids + (first, last, entity) spans
  rows = nsp_rows(pairs, seq_len=128, seed=0)               # Rows for the ernie objective

Pairs for next-sentence prediction: consecutive verses of one chapter, and a synset's
definition followed by its first example sentence (the "next gloss sentence"). Each pair
keeps its true second sentence or, with probability 1/2 (a seeded draw), takes the second
sentence of another random pair of the same source and split: nsp_labels 1 = next, 0 = random.

Row layout: [bos] A [eos] B [eos] pad..., token_types 0 over bos, A and its eos, 1 over B
and its eos; segment_ids 1 on real tokens; positions 0, 1, ...

Entity ids (`entities`, int32 per token): 0 = no entity; k >= 1 = graph entity k - 1
(plm.data.kg.Graph.entities[k - 1]), set at the first subword of each linked mention (the
linker's align_to_subwords rule). Pairs longer than seq_len are left out and counted.

Splits: Bible chapters by plm.data.bible.chapter_split; synsets by the same hash of their
key (5% test, 5% validation), so a gloss and its examples stay in one split.
"""
import dataclasses
import hashlib
import json
import os
import zlib

import numpy as np

from plm.data import bible
from plm.data.rows import Rows
from plm.errors import UserError
from plm.kg import linker

SOURCES = ('bible', 'glosses')
# What the rows depend on besides the graph and vocabulary: a cached corpus made with other
# settings is rebuilt, one made with another graph or vocabulary is refused.
FORMAT = 1


def synset_split(key: str) -> str:
  bucket = zlib.crc32(key.encode('utf-8')) % 20
  return {0: 'test', 1: 'validation'}.get(bucket, 'train')


@dataclasses.dataclass(frozen=True)
class Linking:
  """What linking needs: the alias table and each entity key's id (graph index + 1)."""
  table: linker.AliasTable
  entity_ids: dict  # key -> id >= 1


def make_linking(graph) -> Linking:
  """Linking onto the nouns of `graph` (plm.data.kg.Graph of WordNet keys)."""
  return Linking(linker.wordnet_aliases(graph.entities),
                 {k: i + 1 for i, k in enumerate(graph.entities)})


@dataclasses.dataclass(frozen=True)
class Sentence:
  ids: tuple  # piece ids, no bos/eos (exactly tokenizer.encode(text))
  mentions: tuple  # (first piece, last piece, entity id): pieces of the mention, 0-based
  text: str


def linked_sentences(texts, tokenizer, linking: Linking) -> list[Sentence]:
  """Each text's pieces and its mentions' piece spans (first subword as align_to_subwords)."""
  out = []
  for text in texts:
    ids, spans = linker.subword_spans(text, tokenizer)
    mentions, j = [], 0
    for m in linker.link(linking.table, text):
      while j < len(spans) and spans[j][1] <= m.start:
        j += 1
      if j == len(spans) or spans[j][0] >= m.end or (mentions and mentions[-1][0] == j):
        continue
      last = j
      while last + 1 < len(spans) and spans[last + 1][0] < m.end:
        last += 1
      mentions.append((j, last, linking.entity_ids[m.entity]))
    out.append(Sentence(tuple(ids), tuple(mentions), text))
  return out


def verse_pairs(split: str, tfds_dir: str) -> list[tuple[str, str]]:
  """Consecutive KJV verses of each chapter of the split."""
  return [(a, b) for chapter in bible.load_documents('en_kjv', split, tfds_dir)
          for a, b in zip(chapter, chapter[1:])]


def gloss_pairs(split: str) -> list[tuple[str, str]]:
  """(definition, first example) of every WordNet synset with an example, in key order."""
  from plm.data import kg  # pylint: disable=g-import-not-at-top
  synsets = kg.load_synsets()
  return [(s.definition, s.examples[0]) for k, s in sorted(synsets.items())
          if s.examples and s.definition and synset_split(k) == split]


def nsp_rows(pairs: list[tuple[Sentence, Sentence]], *, seq_len: int, seed: int,
             bos_id: int, eos_id: int, info: dict | None = None) -> Rows:
  """One row per pair, its second sentence replaced by a random pair's with probability 1/2."""
  rng = np.random.default_rng(seed)
  n = len(pairs)
  is_next = rng.random(n) < 0.5
  other = (np.arange(n) + rng.integers(1, max(n, 2), n)) % max(n, 1)  # never the pair itself
  keys = ('tokens', 'token_types', 'segment_ids', 'positions', 'entities')
  arrays = {k: np.zeros((n, seq_len), np.int32) for k in keys}
  labels, kept, too_long = [], [], 0
  for i, (a, b) in enumerate(pairs):
    if not is_next[i]:
      b = pairs[other[i]][1]
    length = len(a.ids) + len(b.ids) + 3
    if length > seq_len or not a.ids or not b.ids:
      too_long += 1
      continue
    r = len(kept)
    arrays['tokens'][r, :length] = [bos_id, *a.ids, eos_id, *b.ids, eos_id]
    arrays['token_types'][r, len(a.ids) + 2:length] = 1
    arrays['segment_ids'][r, :length] = 1
    arrays['positions'][r, :length] = np.arange(length)
    for offset, s in ((1, a), (len(a.ids) + 2, b)):
      for first, _, entity in s.mentions:
        arrays['entities'][r, offset + first] = entity
    labels.append(int(is_next[i]))
    kept.append(i)
  if not kept:
    raise UserError(f'no sentence pair fits in {seq_len} tokens ({too_long} too long); raise '
                    'data.seq_len')
  arrays = {k: v[:len(kept)] for k, v in arrays.items()}
  arrays['nsp_labels'] = np.asarray(labels, np.int32)
  return Rows(arrays, info=dict(info or {}, pairs=len(kept), too_long=too_long,
                                linked_tokens=int((arrays['entities'] > 0).sum())))


def corpus_key(tokenizer, graph, settings: dict) -> dict:
  """What a cached linked corpus was built against (checked before it is used)."""
  return dict(vocab=tokenizer.fingerprint, graph=graph.fingerprint, format=FORMAT, **settings)


def load_or_build(path: str, key: dict, build) -> Rows:
  """The rows cached at `path` if they were built against `key`, else `build()` saved there.

  A cache of another graph or vocabulary is one clear error (never silently rebuilt, so two
  runs cannot train on different entity ids under one name); other settings rebuild it.
  """
  if os.path.isfile(path):
    with np.load(path) as z:
      saved = json.loads(str(z['key']))
      for field in ('graph', 'vocab'):
        if saved.get(field) != key[field]:
          raise UserError(
             f'the linked corpus {path} was built against {field} {saved.get(field)}, this run '
             f'uses {key[field]}: delete {os.path.dirname(path)} (it is rebuilt) or set '
             'ernie.corpus_dir to a new directory')
      if saved == key:
        arrays = {k: z[k] for k in z.files if k not in ('key', 'info')}
        return Rows(arrays, info=json.loads(str(z['info'])))
  rows = build()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}.npz'
  np.savez(tmp, key=json.dumps(key, sort_keys=True), info=json.dumps(rows.info),
           **{k: v for k, v in rows.arrays.items() if k != 'stream'})
  os.replace(tmp, path)
  return rows


def fingerprint(key: dict) -> str:
  return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def pretraining_rows(split: str, tokenizer, graph, linking_fn, *, seq_len: int, seed: int,
                     max_pairs: int, tfds_dir: str, corpus_dir: str) -> Rows:
  """The split's NSP rows of both sources (cached in corpus_dir/pretrain_<split>.npz).

  max_pairs > 0 keeps the first max_pairs pairs of each source (small runs and tests).
  `linking_fn()` makes the Linking (only called when the cache is missing).
  """
  key = corpus_key(tokenizer, graph, dict(split=split, seq_len=seq_len, seed=seed,
                                          max_pairs=max_pairs, what='pretrain'))

  def build():
    linking = linking_fn()
    parts, info = [], {}
    for s, source in enumerate(SOURCES):
      pairs = verse_pairs(split, tfds_dir) if source == 'bible' else gloss_pairs(split)
      if max_pairs:
        pairs = pairs[:max_pairs]
      firsts = linked_sentences([a for a, _ in pairs], tokenizer, linking)
      seconds = linked_sentences([b for _, b in pairs], tokenizer, linking)
      rows = nsp_rows(list(zip(firsts, seconds)), seq_len=seq_len, seed=seed + 7919 * s,
                      bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id)
      info[source] = rows.info
      parts.append(rows.with_stream(s))
    arrays = {k: np.concatenate([p.arrays[k] for p in parts]) for k in parts[0].keys}
    return Rows(arrays, info=dict(info, vocab=tokenizer.fingerprint, graph=graph.fingerprint))

  return load_or_build(os.path.join(corpus_dir, f'pretrain_{split}.npz'), key, build)
