"""ERNIE 2.0's pre-training tasks (Sun et al., 2020, Sec. 4.2) built from structured text.

A corpus is a list of `Chapter`s: the Bible gives documents = chapters (books above them),
sentences = verses, and a second translation of the same verses. Each builder turns it into
`Example`s (segments of token ids plus labels); `layout` writes them as Rows:

  tokens, segment_ids, positions, token_types  [N, L] the input row
      [bos] seg_1 [eos] seg_2 [eos] ...; token_types alternate 0/1 by segment
  labels, label_weights  [N, L]  per-token labels (word-aware tasks) or the row's class at
      position 0, the bos (sentence-level tasks); weight 1 where a label counts
  units  [N, L]  knowledge masking only: k > 0 on the pieces of the row's k-th entity mention

The tasks (what each uses of the text is in experiments/ernie2/README.md):
  knowledge_masking   runs of verses; entity mentions (plm/kg/linker.py) masked as units in
                      the objective, phrase-level n-grams for the rest (plm/objectives/ernie2.py)
  capitalization      the verse lower-cased; is each word capitalised (first letter upper,
                      so KJV's all-caps LORD counts as capitalised)? label on a word's first piece
  token_document      a verse; does each word (lower-cased) occur in another verse of its chapter?
  sentence_reorder    1..m consecutive verses of a chapter, shuffled; the permutation's class
  sentence_distance   two verses: 0 adjacent (B follows A), 1 same chapter and |i - j| > 1,
                      2 another chapter
  discourse           a verse opening with an explicit connective (DISCOURSE_CONNECTIVES),
                      the connective removed, after the verse before it; the connective's class
  ir_relevance        a verse (query) and a verse of the second translation: 0 the same verse
                      (strong), 1 another verse of its chapter (weak), 2 a verse of another book
"""
from collections.abc import Sequence
import collections
import dataclasses
import itertools
import random

import numpy as np

from plm.data import bible
from plm.data import rows as rows_lib
from plm.errors import UserError
from plm.kg import linker

MAX_REORDER = 3  # sentence_reorder: at most this many segments (1 + 2 + 6 = 9 classes)
REORDER_PERMUTATIONS = tuple(p for k in range(1, MAX_REORDER + 1)
                             for p in itertools.permutations(range(k)))
DISCOURSE_CONNECTIVES = ('and', 'for', 'but', 'then', 'so', 'therefore')
# task -> (kind, classes): 'mlm' predicts vocabulary ids, 'token' a class per word,
# 'sentence' a class per row (read at the bos)
TASKS = {
    'knowledge_masking': ('mlm', 0),
    'capitalization': ('token', 2),
    'token_document': ('token', 2),
    'sentence_reorder': ('sentence', len(REORDER_PERMUTATIONS)),
    'sentence_distance': ('sentence', 3),
    'discourse': ('sentence', len(DISCOURSE_CONNECTIVES)),
    'ir_relevance': ('sentence', 3),
}
# What each task needs of the corpus, for the error when it yields no example.
NEEDS = {
    'knowledge_masking': 'verses with entity mentions the linker finds',
    'capitalization': 'verses with words',
    'token_document': 'chapters of at least 2 verses',
    'sentence_reorder': 'chapters whose verses fit data.seq_len',
    'sentence_distance': 'at least 2 chapters, each of at least 3 verses',
    'discourse': f'verses opening with one of {DISCOURSE_CONNECTIVES} after an earlier verse',
    'ir_relevance': 'a second translation of the same verses (Chapter.parallel) in at least 2 '
                    'books',
}
KEYS = ('tokens', 'segment_ids', 'positions', 'token_types', 'labels', 'label_weights', 'units')


@dataclasses.dataclass(frozen=True)
class Chapter:
  """A document: its book, number and verses; `parallel`: the same verses in a second
  translation ('' where it has none), or None."""
  book: str
  number: int
  verses: tuple[str, ...]
  parallel: tuple[str, ...] | None = None


@dataclasses.dataclass
class Example:
  segments: list  # token id lists, no bos/eos
  label: int = -1  # sentence-level class, -1 = none
  token_labels: list | None = None  # per segment, a label per token; -1 = not a target
  units: list | None = None  # per segment, an entity unit id per token (0 = none)


def load_chapters(translation: str, split: str, data_dir: str, parallel: str = ''
                  ) -> list[Chapter]:
  """The split's chapters in canonical order; KJV's paragraph mark '¶' is dropped."""
  clean = lambda t: t.replace('¶', ' ').strip()
  other = dict(bible.load_verses(parallel, split, data_dir)) if parallel else None
  grouped = collections.defaultdict(list)
  for ref, text in bible.load_verses(translation, split, data_dir):
    book, number, _ = bible.parse_reference(ref)
    grouped[(book, number)].append((clean(text), clean(other.get(ref, '')) if other else ''))
  return [Chapter(book, number, tuple(v for v, _ in verses),
                  tuple(p for _, p in verses) if parallel else None)
          for (book, number), verses in grouped.items()]


def word_labels(text: str, tokenizer, label_of) -> tuple[list[int], list[int]]:
  """(piece ids of `text`, a label per piece): `label_of(word match)` on each word's first
  piece (linker.WORD words), -1 elsewhere."""
  ids, spans = linker.subword_spans(text, tokenizer)
  labels, j = [-1] * len(ids), 0
  for word in linker.WORD.finditer(text):
    while j < len(spans) and spans[j][1] <= word.start():
      j += 1
    if j < len(spans) and labels[j] == -1:
      labels[j] = int(label_of(word))
  return ids, labels


def capitalization(chapters: Sequence[Chapter], tokenizer, rng: random.Random) -> list[Example]:
  del rng
  out = []
  for chapter in chapters:
    for verse in chapter.verses:
      lower = verse.lower()
      if len(lower) != len(verse) or not verse:  # lower() must keep character offsets
        continue
      ids, labels = word_labels(lower, tokenizer, lambda m: verse[m.start()].isupper())
      out.append(Example([ids], token_labels=[labels]))
  return out


def token_document(chapters: Sequence[Chapter], tokenizer, rng: random.Random) -> list[Example]:
  del rng
  out = []
  for chapter in chapters:
    if len(chapter.verses) < 2:
      continue
    # in how many of the chapter's verses each word occurs: > 1 = in another one too
    counts = collections.Counter(w for v in chapter.verses
                                 for w in {w.lower() for w in linker.WORD.findall(v)})
    for verse in chapter.verses:
      ids, labels = word_labels(verse, tokenizer, lambda m: counts[m.group().lower()] > 1)
      if ids:
        out.append(Example([ids], token_labels=[labels]))
  return out


def knowledge_masking(chapters: Sequence[Chapter], tokenizer, rng: random.Random, *,
                      table: linker.AliasTable, seq_len: int) -> list[Example]:
  """Runs of consecutive verses filling a row; the pieces of each entity mention one unit."""
  del rng
  out = []

  def flush(ids, units):
    if ids and any(units):
      out.append(Example([ids], units=[_renumber(units)]))

  n_units = 0  # a new id per mention; renumbered 1, 2, ... per row
  for chapter in chapters:
    ids, units = [], []
    for verse in chapter.verses:
      v_ids, spans = linker.subword_spans(verse, tokenizer)
      v_units = [0] * len(v_ids)
      for m in linker.link(table, verse):
        n_units += 1
        for j, (a, b) in enumerate(spans):
          if a < m.end and b > m.start and b > a:
            v_units[j] = n_units
      if ids and len(ids) + len(v_ids) > seq_len - 2:
        flush(ids, units)
        ids, units = [], []
      ids, units = ids + v_ids, units + v_units
    flush(ids, units)
  return out


def _renumber(units: list[int]) -> list[int]:
  """Unit ids 1, 2, ... in order of first appearance (0 stays 0)."""
  new = {}
  return [new.setdefault(u, len(new) + 1) if u else 0 for u in units]


def sentence_reorder(chapters: Sequence[Chapter], tokenizer, rng: random.Random
                     ) -> list[Example]:
  out = []
  for chapter in chapters:
    encoded = tokenizer.encode(list(chapter.verses))
    i = 0
    while i < len(encoded):
      k = min(rng.randint(1, MAX_REORDER), len(encoded) - i)
      perm = list(range(k))
      rng.shuffle(perm)
      out.append(Example([encoded[i + p] for p in perm],
                         label=REORDER_PERMUTATIONS.index(tuple(perm))))
      i += k
  return out


def sentence_distance(chapters: Sequence[Chapter], tokenizer, rng: random.Random
                      ) -> list[Example]:
  out = []
  if len(chapters) < 2:
    return out
  for c, chapter in enumerate(chapters):
    if len(chapter.verses) < 3:
      continue
    encoded = tokenizer.encode(list(chapter.verses))
    for i in range(len(encoded) - 1):
      far = [j for j in range(len(encoded)) if abs(j - i) > 1]
      label = rng.choice([0, 1, 2] if far else [0, 2])
      if label == 0:
        other = encoded[i + 1]
      elif label == 1:
        other = encoded[rng.choice(far)]
      else:
        d = rng.choice([d for d in range(len(chapters)) if d != c])
        other = tokenizer.encode(rng.choice(chapters[d].verses))
      out.append(Example([encoded[i], other], label=label))
  return out


def split_connective(verse: str) -> tuple[int, str] | None:
  """(connective class, the verse without it) for a verse opening with a connective."""
  words = verse.split(maxsplit=1)
  if len(words) < 2:
    return None
  first = words[0].lower().rstrip(',;:')
  if first not in DISCOURSE_CONNECTIVES:
    return None
  rest = words[1]
  return DISCOURSE_CONNECTIVES.index(first), rest[:1].upper() + rest[1:]


def discourse(chapters: Sequence[Chapter], tokenizer, rng: random.Random, *,
              balance: bool = True) -> list[Example]:
  """(previous verse, verse without its opening connective) -> the connective. With
  `balance`, no class keeps more examples than the second most frequent one (KJV opens
  a third of its verses with 'And')."""
  by_class = collections.defaultdict(list)
  for chapter in chapters:
    for prev, verse in zip(chapter.verses, chapter.verses[1:]):
      found = split_connective(verse)
      if found:
        by_class[found[0]].append((prev, found[1]))
  if balance and len(by_class) > 1:
    cap = sorted(map(len, by_class.values()))[-2]
    by_class = {k: rng.sample(v, min(cap, len(v))) for k, v in sorted(by_class.items())}
  out = []
  for label, pairs in sorted(by_class.items()):
    for prev, rest in pairs:
      a, b = tokenizer.encode([prev, rest])
      out.append(Example([a, b], label=label))
  return out


def ir_relevance(chapters: Sequence[Chapter], tokenizer, rng: random.Random) -> list[Example]:
  if any(c.parallel is None for c in chapters):
    return []
  books = sorted({c.book for c in chapters})
  if len(books) < 2:
    return []
  by_book = collections.defaultdict(list)
  for c in chapters:
    by_book[c.book].extend(p for p in c.parallel if p)
  out = []
  for chapter in chapters:
    for i, (query, same) in enumerate(zip(chapter.verses, chapter.parallel)):
      weak = [p for j, p in enumerate(chapter.parallel) if j != i and p]
      label = rng.choice([x for x, ok in ((0, bool(same)), (1, bool(weak)), (2, True)) if ok])
      if label == 0:
        doc = same
      elif label == 1:
        doc = rng.choice(weak)
      else:
        doc = rng.choice(by_book[rng.choice([b for b in books if b != chapter.book])])
      out.append(Example(tokenizer.encode([query, doc]), label=label))
  return out


BUILDERS = {'knowledge_masking': knowledge_masking, 'capitalization': capitalization,
            'token_document': token_document, 'sentence_reorder': sentence_reorder,
            'sentence_distance': sentence_distance, 'discourse': discourse,
            'ir_relevance': ir_relevance}


def layout(examples: Sequence[Example], seq_len: int, *, bos_id: int, eos_id: int,
           stream: int = 0) -> rows_lib.Rows:
  """Examples as Rows (KEYS); an example longer than seq_len is left out and counted."""
  arrays = {k: [] for k in KEYS}
  too_long = 0
  for e in examples:
    n = 1 + sum(len(s) + 1 for s in e.segments)
    if n > seq_len:
      too_long += 1
      continue
    row = {k: np.zeros(seq_len, np.int32) for k in KEYS}
    row['tokens'][0] = bos_id
    pos = 1
    for s, seg in enumerate(e.segments):
      row['tokens'][pos:pos + len(seg)] = seg
      row['tokens'][pos + len(seg)] = eos_id
      row['token_types'][pos:pos + len(seg) + 1] = s % 2
      if e.token_labels is not None:
        labels = np.asarray(e.token_labels[s], np.int32)
        row['labels'][pos:pos + len(seg)] = np.maximum(labels, 0)
        row['label_weights'][pos:pos + len(seg)] = labels >= 0
      if e.units is not None:
        row['units'][pos:pos + len(seg)] = e.units[s]
      pos += len(seg) + 1
    row['segment_ids'][:n] = 1
    row['positions'][:n] = np.arange(n)
    if e.label >= 0:
      row['labels'][0], row['label_weights'][0] = e.label, 1
    for k in KEYS:
      arrays[k].append(row[k])
  if not arrays['tokens']:
    return rows_lib.Rows({k: np.zeros((0, seq_len), np.int32) for k in KEYS}, stream=stream,
                         info=dict(examples=len(examples), too_long=too_long))
  return rows_lib.Rows({k: np.stack(v) for k, v in arrays.items()}, stream=stream,
                       info=dict(examples=len(examples), too_long=too_long))


def build_rows(task: str, chapters: Sequence[Chapter], tokenizer, seq_len: int, *, seed: int,
               stream: int = 0, table: linker.AliasTable | None = None) -> rows_lib.Rows:
  """Task `task`'s Rows of `chapters`; a corpus that yields none is one clear error."""
  if task not in BUILDERS:
    raise UserError(f'unknown ERNIE 2.0 task {task!r}; use one of {list(BUILDERS)}')
  rng = random.Random(f'{seed}:{task}')
  if task == 'knowledge_masking':
    if table is None:
      raise UserError('knowledge_masking needs an entity alias table (plm/kg/linker.py)')
    examples = knowledge_masking(chapters, tokenizer, rng, table=table, seq_len=seq_len)
  else:
    examples = BUILDERS[task](chapters, tokenizer, rng)
  rows = layout(examples, seq_len, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                stream=stream)
  if not len(rows):
    raise UserError(f'task {task} made no example of length <= {seq_len} from '
                    f'{len(chapters)} chapters: it needs {NEEDS[task]}' +
                    (f' ({rows.info["too_long"]} were longer than data.seq_len)'
                     if rows.info['too_long'] else ''))
  return rows
