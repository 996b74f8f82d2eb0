"""A knowledge graph's triples: the shipped WordNet 3.0 split, or a user's TSV directory.

Layout (pykeen's and Wikidata5M's): `<dir>/train.txt`, `valid.txt`, `test.txt` (each may be
`.gz` or `.xz` compressed), UTF-8, one triple a line, `head<TAB>relation<TAB>tail`; blank lines
are skipped. The shipped graph (plm/data/corpora/wordnet, made by tools/make_wordnet.py) is
the same layout, xz-compressed, so both go through this one builder:

  config = knowledge_graph.config('tsv', '~/wikidata5m')
  triples = knowledge_graph.load_triples(config, data_dir='~/tensorflow_datasets')

Records are blocks of BLOCK triples (strings), so reading a graph back is one array per
block, not a Python decode per triple (170k triples: 0.1 s instead of 15 s).
"""
import dataclasses
import gzip
import lzma
import os

import numpy as np
import tensorflow_datasets as tfds

from plm.data.builders import common
from plm.errors import MissingFileError, UserError

SPLITS = ('train', 'valid', 'test')
WORDNET_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'corpora', 'wordnet')
LAYOUT = ('train.txt, valid.txt and test.txt (or .txt.gz/.txt.xz), one triple a line: '
          'head<TAB>relation<TAB>tail')
BLOCK = 4096  # triples a record
_OPEN = {'.txt': open, '.txt.gz': gzip.open, '.txt.xz': lzma.open}


@dataclasses.dataclass(eq=False)
class GraphConfig(tfds.core.BuilderConfig):
  source_dir: str = ''  # absolute; holds train/valid/test .txt[.gz|.xz]


def config(source: str, directory: str = '') -> GraphConfig:
  """The builder config of 'wordnet' (shipped) or 'tsv' (`directory`), named by fingerprint."""
  if source == 'wordnet':
    if directory:
      raise UserError(f"kg.dir={directory!r} is set but kg.source='wordnet' (the shipped "
                      "graph); set kg.source='tsv' to read kg.dir, or kg.dir='' for WordNet")
    directory = WORDNET_DIR
  elif source == 'tsv':
    if not directory:
      raise UserError("kg.source='tsv' needs kg.dir: a directory holding " + LAYOUT)
  else:
    raise UserError(f"kg.source={source!r}: use 'wordnet' (the shipped WordNet 3.0 graph) or "
                    "'tsv' (your own graph in kg.dir)")
  directory = common.check_dir(directory, LAYOUT)
  files = list(split_files(directory).values())
  return GraphConfig(name=f'{source}_{common.fingerprint(files, directory)}',
                     source_dir=directory, description=f'triples from {directory}')


def split_files(directory: str) -> dict[str, str]:
  """{split: path}; a missing or doubled split file is one error naming the layout."""
  files = {}
  for split in SPLITS:
    found = [split + ext for ext in _OPEN if os.path.isfile(os.path.join(directory, split + ext))]
    if len(found) != 1:
      listing = sorted(f for f in os.listdir(directory) if not f.startswith('.'))
      problem = f'no {split}.txt' if not found else f'both {" and ".join(found)}'
      raise MissingFileError(f'{directory} has {problem}; a graph directory needs exactly '
                             f'{LAYOUT} (found: {listing})')
    files[split] = os.path.join(directory, found[0])
  return files


def read_triples(path: str) -> tuple[list[tuple[str, str, str]], list[int]]:
  """(triples, their line numbers); a malformed line is one error naming file and line."""
  opener = next(o for ext, o in _OPEN.items() if path.endswith(ext))
  triples, lines = [], []
  with opener(path, 'rb') as f:
    for number, raw in enumerate(f, start=1):
      try:
        line = raw.decode('utf-8-sig' if number == 1 else 'utf-8').rstrip('\r\n')
      except UnicodeDecodeError as e:
        raise UserError(f'{path}, line {number}: not UTF-8 ({e.reason} at byte {e.start}); '
                        're-encode the file as UTF-8') from None
      if not line.strip():
        continue
      fields = [x.strip() for x in line.split('\t')]
      if len(fields) != 3 or not all(fields):
        raise UserError(f'{path}, line {number}: {line[:80]!r} is not a triple; each line must '
                        'be head<TAB>relation<TAB>tail (three non-empty fields separated by '
                        'tabs, no header); fix or delete the line')
      triples.append(tuple(fields))
      lines.append(number)
  return triples, lines


class PlmKnowledgeGraph(tfds.core.GeneratorBasedBuilder):
  """(head, relation, tail) string triples of one graph; the config names which."""

  name = 'plm_knowledge_graph'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        'index': tfds.features.Scalar(dtype=np.int64),  # block number in the file
        'triples': tfds.features.Tensor(shape=(None, 3), dtype=np.object_),  # head, rel, tail
        'lines': tfds.features.Tensor(shape=(None,), dtype=np.int64),  # line numbers in the file
    }))

  def _split_generators(self, dl_manager):
    del dl_manager  # local files; nothing to download
    c = self.builder_config
    files = split_files(c.source_dir)
    # Read (and check) every file before anything is written.
    read = {split: read_triples(path) for split, path in files.items()}
    if not read['train'][0]:
      raise UserError(f'{files["train"]} holds no triples: the graph is empty; a graph needs '
                      f'at least one training triple ({LAYOUT})')
    # TFDS refuses to write an empty split: an empty valid/test is left out (read back empty).
    return {split: self._generate_examples(*r) for split, r in read.items() if r[0]}

  def _generate_examples(self, triples, lines):
    for block, start in enumerate(range(0, len(triples), BLOCK)):
      yield block, {'index': block,
                    'triples': np.array(triples[start:start + BLOCK], dtype=object),
                    'lines': np.array(lines[start:start + BLOCK], dtype=np.int64)}


def load_triples(graph_config: GraphConfig, data_dir: str
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (str triples [N, 3], line numbers [N])} in file order; builds on first use."""
  sources = common.data_sources(PlmKnowledgeGraph, graph_config, data_dir)
  out = {}
  for split in SPLITS:
    records = common.in_order(sources[split]) if split in sources else []
    triples = [np.char.decode(r['triples'].astype(np.bytes_), 'utf-8').reshape(-1, 3)
               for r in records]
    lines = [r['lines'] for r in records]
    out[split] = (np.concatenate(triples) if triples else np.zeros((0, 3), str),
                  np.concatenate(lines) if lines else np.zeros((0,), np.int64))
  return out
