"""Knowledge graphs as id arrays: the shipped WordNet 3.0 graph, or a user's TSV graph.

  graph = load_graph(config.kg)
  graph.splits['train']  # int32 [N, 3]: (head id, relation id, tail id)
  graph.entities[graph.splits['train'][0, 0]]  # 'n00001930' (WordNet: pos letter + offset)

The shipped graph is WN18RR's recipe on all of WordNet 3.0 (tools/make_wordnet.py): the 11
WN18RR relations, no inverse relation, one direction of any pair linked both ways, and a
fixed hash split of 3,000 valid and 3,000 test triples whose entities all occur in train:

  entities 112,199   relations 11   train 167,739   valid 3,000   test 3,000

(WN18RR itself: 40,943 entities, 86,835 / 3,034 / 3,134 triples.) Triples come through the
TFDS builder plm/data/builders/knowledge_graph.py (array_record, no TensorFlow at run time).
Entity ids index `entities`, the sorted keys of the train split; relation ids likewise.
`triple_rows` makes TransE's training rows of a split (TripleRows, a plm.data.dataset).
"""
import dataclasses
import functools
import hashlib
import json
import lzma
import os

import ml_collections
import numpy as np

from plm.data import dataset
from plm.data import rows as rows_lib
from plm.data.builders import knowledge_graph
from plm.errors import UserError

SYNSETS_PATH = os.path.join(knowledge_graph.WORDNET_DIR, 'synsets.jsonl.xz')
UNSEEN = ('skip', 'error')


def kg_config() -> ml_collections.ConfigDict:
  """The `kg` fields of a config (configs/transe.py): which graph, and how to read it."""
  c = ml_collections.ConfigDict()
  c.source = 'wordnet'  # 'wordnet': the shipped WordNet 3.0 graph; 'tsv': your graph in kg.dir
  c.dir = ''  # source='tsv': holds train.txt, valid.txt, test.txt (head<TAB>relation<TAB>tail)
  c.unseen = 'skip'  # valid/test triples with an entity/relation not in train: 'skip' or 'error'
  c.tfds_dir = '~/tensorflow_datasets'  # where TFDS builds the graph (array_record)
  return c


@dataclasses.dataclass(frozen=True)
class Graph:
  """A graph's vocabularies and id triples; arrays are read-only (shared by a cache)."""
  entities: tuple[str, ...]  # entity keys, index = entity id
  relations: tuple[str, ...]  # relation names, index = relation id
  splits: dict[str, np.ndarray]  # 'train'|'valid'|'test' -> int32 [N, 3] (head, relation, tail)
  names: dict[str, str]  # entity key -> readable name (WordNet: first lemma); may be partial
  info: dict  # source, directory, counts, skipped unseen valid/test triples
  fingerprint: str  # 16 hex digits of sha256 over vocabularies and triples

  @property
  def num_entities(self) -> int:
    return len(self.entities)

  @property
  def num_relations(self) -> int:
    return len(self.relations)


@dataclasses.dataclass(frozen=True)
class Synset:
  """One WordNet 3.0 synset, as shipped in plm/data/corpora/wordnet/synsets.jsonl.xz."""
  key: str  # pos letter (n, v, a, r; satellites are a) + 8-digit offset: 'n02084071'
  lexname: str  # lexicographer file, the coarse type: 'noun.animal', 'verb.motion', ...
  lemmas: tuple[str, ...]  # WordNet's spelling, '_' for spaces: ('dog', 'domestic_dog', ...)
  senses: tuple[int, ...]  # each lemma's sense number (1 = its most frequent sense)
  counts: tuple[int, ...]  # each lemma sense's SemCor tag count (WordNet's cntlist)
  definition: str
  examples: tuple[str, ...]  # the gloss's quoted example sentences


def load_graph(kg: ml_collections.ConfigDict) -> Graph:
  """The graph `kg` names (kg_config's fields), built by TFDS into kg.tfds_dir on first use."""
  if kg.unseen not in UNSEEN:
    raise UserError(f'kg.unseen={kg.unseen!r}: use {UNSEEN[0]!r} (count, print and drop '
                    f'valid/test triples unseen in train) or {UNSEEN[1]!r}')
  config = knowledge_graph.config(kg.source, kg.dir)
  return _load(config.name, config.source_dir, kg.source, kg.unseen,
               os.path.abspath(os.path.expanduser(kg.tfds_dir)))


@functools.lru_cache(maxsize=4)
def _load(name, source_dir, source, unseen, data_dir) -> Graph:
  del name  # the cache key: a changed directory is a new fingerprint, so a new graph
  config = knowledge_graph.config(source, source_dir if source == 'tsv' else '')
  read = knowledge_graph.load_triples(config, data_dir)
  files = knowledge_graph.split_files(config.source_dir)
  train = read['train'][0]
  entities = np.unique(train[:, [0, 2]])  # sorted, so ids do not depend on line order
  relations = np.unique(train[:, 1])
  splits, skipped, examples = {}, {}, []
  for split, (triples, lines) in read.items():
    ids, known = _ids(triples, entities, relations)
    skipped[split] = int((~known).sum())
    examples += [f'{files[split]}, line {n}: {"  ".join(x)}'
                 for x, n in zip(triples[~known][:3].tolist(), lines[~known][:3])]
    ids = ids[known]
    ids.flags.writeable = False
    splits[split] = ids
  entities, relations = tuple(entities.tolist()), tuple(relations.tolist())
  if sum(skipped.values()):
    what = (f'{skipped["valid"]} valid and {skipped["test"]} test triples name an entity or '
            f'relation that never occurs in train, e.g. {examples}')
    if unseen == 'error':
      raise UserError(f'{what}; add them to train.txt, delete them, or set kg.unseen=\'skip\' '
                      'to drop them (counted in graph.info)')
    print(f'kg: skipped {what} (kg.unseen=\'skip\')')
  h = hashlib.sha256('\n'.join(entities + ('',) + relations).encode())
  for split in knowledge_graph.SPLITS:
    h.update(split.encode() + splits[split].tobytes())
  names = {}
  if source == 'wordnet':
    synsets = load_synsets()
    names = {k: synsets[k].lemmas[0].replace('_', ' ') for k in entities if k in synsets}
  info = {'source': source, 'dir': config.source_dir, 'entities': len(entities),
          'relations': len(relations),
          'triples': {s: len(a) for s, a in splits.items()}, 'skipped_unseen': skipped,
          'skipped_examples': examples[:3]}
  return Graph(entities=entities, relations=relations, splits=splits, names=names, info=info,
               fingerprint=h.hexdigest()[:16])


def _ids(triples, entities, relations) -> tuple[np.ndarray, np.ndarray]:
  """(int32 [N, 3] ids, bool [N] whether all three are in the sorted vocabularies)."""
  ids = np.zeros(triples.shape, np.int32)
  known = np.ones(len(triples), bool)
  for column, vocab in ((0, entities), (1, relations), (2, entities)):
    i = np.minimum(np.searchsorted(vocab, triples[:, column]), max(len(vocab) - 1, 0))
    known &= vocab[i] == triples[:, column]
    ids[:, column] = i
  return ids, known


@functools.lru_cache(maxsize=1)
def load_synsets() -> dict[str, Synset]:
  """{key: Synset} of all 117,659 WordNet 3.0 synsets (read from the shipped file, ~2 s)."""
  synsets = {}
  with lzma.open(SYNSETS_PATH, 'rt', encoding='utf-8') as f:
    for line in f:
      s = json.loads(line)
      synsets[s['key']] = Synset(s['key'], s['lexname'], tuple(s['lemmas']), tuple(s['senses']),
                                 tuple(s['counts']), s['definition'], tuple(s['examples']))
  return synsets


@functools.lru_cache(maxsize=2)
def load_exceptions(pos: str) -> dict[str, tuple[str, ...]]:
  """WordNet's irregular forms of 'noun' or 'verb': {'children': ('child',), ...}."""
  path = os.path.join(knowledge_graph.WORDNET_DIR, f'{pos}_exceptions.txt.xz')
  with lzma.open(path, 'rt', encoding='utf-8') as f:
    return {w: tuple(bases) for w, *bases in (line.split() for line in f)}


class TripleRows(rows_lib.Rows):
  """Rows of triples whose batches come from a numpy permutation per epoch.

  Same contract as Rows (a pure function of seed and step, epochs reshuffled and
  concatenated, then cut into batches), but O(batch) per step: Rows' grain index
  shuffle costs ~30 us a row, which alone would cap TransE at ~30k triples/s.
  """

  def _permutation(self, seed: int, epoch: int) -> np.ndarray:
    cache = self.__dict__.setdefault('_permutations', {})
    if (seed, epoch) not in cache:
      if len(cache) >= 4:  # a batch spans at most two epochs (unless batch > rows)
        cache.pop(next(iter(cache)))
      cache[seed, epoch] = dataset.permutation((seed, epoch), len(self))
    return cache[seed, epoch]

  def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
            process_count: int = 1) -> dict[str, np.ndarray]:
    n = rows_lib.per_process(batch_size, process_index, process_count)
    if not len(self):
      raise UserError('Cannot draw batches from an empty dataset.')
    start = step * batch_size + process_index * n
    positions = start + np.arange(n, dtype=np.int64)
    epochs, offsets = np.divmod(positions, len(self))
    rows = np.empty((n,), np.int64)
    for epoch in np.unique(epochs):
      at = epochs == epoch
      rows[at] = self._permutation(seed, int(epoch))[offsets[at]]
    return self.take(rows)


def triple_rows(triples: np.ndarray, info: dict | None = None) -> TripleRows:
  """Rows 'heads', 'relations', 'tails', 'valid' (=1) of int triples [N, 3]."""
  t = np.asarray(triples, np.int32).reshape(-1, 3)
  return TripleRows(dict(heads=t[:, 0], relations=t[:, 1], tails=t[:, 2],
                         valid=np.ones((len(t),), np.int32)), info=info)
