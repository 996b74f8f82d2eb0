"""ERNIE's fine-tuning tasks, built from the linked KJV verses and WordNet glosses.

Sentences: every KJV verse of the split, and every WordNet definition and example sentence
of the split's synsets (plm.data.ernie.synset_split), linked by plm/kg/linker.py.

- typing: one mention per sentence (a seeded draw among its mentions of TYPES), labelled
  with its linked synset's lexicographer file ("noun.person", ...). The paper's entity
  typing (FIGER, Open Entity) marks the mention; so do we.
- relation: two mentions of one sentence whose linked entities are joined by a graph
  triple (any split of the graph), labelled with the relation and its direction relative
  to sentence order ('_hypernym>' = first is the head, '_hypernym<' = second is the head);
  plus, per such sentence, one pair of its mentions the graph does not join ('none'). Only
  RELATIONS (those with >= 150 training pairs) are kept.

Markers: MARKER (the KJV's paragraph sign, a piece of every vocabulary trained on the KJV,
never in WordNet text and stripped from the verses) is inserted before the first and after
the last subword of each marked mention: [bos] ... ¶ dog ¶ ... [eos]. `markers` holds the
position of each mention's opening marker, in sentence order; the classifier pools there.
A row whose marker tokens are not where `markers` says is one clear error (check_markers).

Entity ids are aligned to first subwords as in plm/data/ernie.py (0 = none).
"""
import os

import numpy as np

from plm.data import bible
from plm.data import ernie as ernie_data
from plm.data.rows import Rows
from plm.errors import UserError

MARKER = '¶'
TASKS = ('typing', 'relation')
TYPES = ('noun.person', 'noun.artifact', 'noun.location', 'noun.communication', 'noun.group',
         'noun.act', 'noun.body', 'noun.animal')
RELATIONS = ('none', '_hypernym<', '_hypernym>', '_instance_hypernym>', '_instance_hypernym<',
             '_has_part>', '_has_part<', '_synset_domain_topic_of<', '_member_meronym>',
             '_member_meronym<', '_member_of_domain_usage>', '_synset_domain_topic_of>')


def labels(task: str) -> tuple[str, ...]:
  if task not in TASKS:
    raise UserError(f'finetune.task={task!r}: use one of {TASKS}')
  return TYPES if task == 'typing' else RELATIONS


def marker_id(tokenizer) -> int:
  sp = getattr(tokenizer, '_sp', tokenizer)
  for piece in (MARKER, '▁' + MARKER):
    i = sp.piece_to_id(piece)
    if i != sp.unk_id():
      return i
  raise UserError(f'the vocabulary {tokenizer.path} has no piece {MARKER!r} for the marker '
                  'tokens; train it on the KJV (data.languages=("en",), corpus bible)')


def split_sentences(split: str, tfds_dir: str) -> list[str]:
  from plm.data import kg  # pylint: disable=g-import-not-at-top
  verses = [v.replace(MARKER, '').strip() for chapter in
            bible.load_documents('en_kjv', split, tfds_dir) for v in chapter]
  glosses = [t for k, s in sorted(kg.load_synsets().items())
             if ernie_data.synset_split(k) == split for t in (s.definition,) + s.examples]
  return [t for t in verses + glosses if t]


def related(graph) -> dict:
  """(entity id a, entity id b) -> label of the pair in that sentence order."""
  out = {}
  for split in ('train', 'valid', 'test'):
    for h, r, t in np.asarray(graph.splits[split]).reshape(-1, 3):
      name = graph.relations[r]
      out.setdefault((h + 1, t + 1), name + '>')
      out.setdefault((t + 1, h + 1), name + '<')
  return out


def examples(task: str, sentences, graph, seed: int) -> list[tuple]:
  """(sentence, ((first, last) piece span of each marked mention), label id) examples."""
  from plm.data import kg  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  out = []
  if task == 'typing':
    synsets = kg.load_synsets()
    for s in sentences:
      typed = [(f, l, TYPES.index(lex)) for f, l, e in s.mentions
               if (lex := synsets[graph.entities[e - 1]].lexname) in TYPES]
      if typed:
        f, l, y = typed[rng.integers(len(typed))]
        out.append((s, ((f, l),), y))
    return out
  pairs = related(graph)
  for s in sentences:
    found, unrelated = [], []
    for i, a in enumerate(s.mentions):
      for b in s.mentions[i + 1:]:
        name = pairs.get((a[2], b[2]))
        if name in RELATIONS:
          found.append((s, ((a[0], a[1]), (b[0], b[1])), RELATIONS.index(name)))
        elif name is None and a[2] != b[2]:
          unrelated.append((s, ((a[0], a[1]), (b[0], b[1])), 0))
    out += found
    if found and unrelated:
      out.append(unrelated[rng.integers(len(unrelated))])
  return out


def marked_rows(items, *, seq_len: int, bos_id: int, eos_id: int, marker: int,
                num_markers: int, info: dict | None = None) -> Rows:
  """Rows with markers around each marked mention; longer rows left out and counted."""
  keys = ('tokens', 'token_types', 'segment_ids', 'positions', 'entities')
  arrays = {k: np.zeros((len(items), seq_len), np.int32) for k in keys}
  markers, ys, too_long = [], [], 0
  for s, spans, y in items:
    opens = {f for f, _ in spans}
    closes = {l for _, l in spans}
    ids, ents, at = [bos_id], [0], []
    entity_at = {f: e for f, _, e in s.mentions}
    for j, piece in enumerate(s.ids):
      if j in opens:
        at.append(len(ids))
        ids.append(marker)
        ents.append(0)
      ids.append(piece)
      ents.append(entity_at.get(j, 0))
      if j in closes:
        ids.append(marker)
        ents.append(0)
    ids.append(eos_id)
    ents.append(0)
    if len(ids) > seq_len:
      too_long += 1
      continue
    r = len(ys)
    arrays['tokens'][r, :len(ids)] = ids
    arrays['entities'][r, :len(ids)] = ents
    arrays['segment_ids'][r, :len(ids)] = 1
    arrays['positions'][r, :len(ids)] = np.arange(len(ids))
    markers.append(at)
    ys.append(y)
  if not ys:
    raise UserError(f'no example fits in {seq_len} tokens ({too_long} too long); raise '
                    'finetune.seq_len')
  arrays = {k: v[:len(ys)] for k, v in arrays.items()}
  arrays['markers'] = np.asarray(markers, np.int32).reshape(len(ys), num_markers)
  arrays['labels'] = np.asarray(ys, np.int32)
  rows = Rows(arrays, info=dict(info or {}, examples=len(ys), too_long=too_long))
  check_markers(rows.arrays, marker)
  return rows


def check_markers(arrays: dict, marker: int) -> None:
  """Every row's `markers` positions hold marker tokens, one opening per marked mention."""
  tokens, at = arrays['tokens'], arrays['markers']
  found = np.take_along_axis(tokens, at, axis=1) == marker
  rows_with = (tokens == marker).sum(1)
  bad = np.flatnonzero(~found.all(1) | (rows_with != 2 * at.shape[1]))
  if len(bad):
    r = int(bad[0])
    raise UserError(f'{len(bad)} rows lack their marker tokens, e.g. row {r} (tokens '
                    f'{tokens[r][:24].tolist()}..., markers at {at[r].tolist()}): each marked '
                    f'mention needs an opening and a closing marker (piece id {marker}); '
                    'rebuild the rows with plm.data.ernie_tasks.marked_rows')


def task_rows(task: str, split: str, tokenizer, graph, linking_fn, *, seq_len: int, seed: int,
              max_examples: int, tfds_dir: str, corpus_dir: str, max_sentences: int = 0) -> Rows:
  """The split's rows of `task` (cached in corpus_dir/<task>_<split>.npz); max_examples > 0
  keeps a seeded random subset of that many; max_sentences > 0 links only a seeded random
  subset of the split's sentences (quick runs and tests)."""
  labels(task)
  key = ernie_data.corpus_key(tokenizer, graph, dict(split=split, seq_len=seq_len, seed=seed,
                                                     max_examples=max_examples, what=task,
                                                     max_sentences=max_sentences))

  def build():
    texts = split_sentences(split, tfds_dir)
    if max_sentences and len(texts) > max_sentences:
      keep = np.random.default_rng(seed + 2).choice(len(texts), max_sentences, replace=False)
      texts = [texts[i] for i in np.sort(keep)]
    sentences = ernie_data.linked_sentences(texts, tokenizer, linking_fn())
    items = examples(task, sentences, graph, seed)
    if max_examples and len(items) > max_examples:
      keep = np.sort(np.random.default_rng(seed + 1).choice(len(items), max_examples, False))
      items = [items[i] for i in keep]
    return marked_rows(items, seq_len=seq_len, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                       marker=marker_id(tokenizer), num_markers=1 if task == 'typing' else 2,
                       info=dict(task=task, split=split, sentences=len(sentences),
                                 vocab=tokenizer.fingerprint, graph=graph.fingerprint))

  return ernie_data.load_or_build(os.path.join(corpus_dir, f'{task}_{split}.npz'),
                                  key, build)
