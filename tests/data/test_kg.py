"""Knowledge graphs (plm/data/kg.py): the shipped WordNet split's invariants, and TSV graphs.

The shipped graph is built once through the TFDS builder into a temporary data_dir (~10 s);
the hand-made TSV graphs are a few lines each, built per test.
"""
import collections
import gzip
import lzma
import os

import numpy as np
import pytest

from plm.data import kg
from plm.data.builders import knowledge_graph
from tools import make_wordnet

WN18RR_RELATIONS = {
    '_hypernym', '_derivationally_related_form', '_instance_hypernym', '_also_see',
    '_member_meronym', '_synset_domain_topic_of', '_has_part', '_member_of_domain_usage',
    '_member_of_domain_region', '_verb_group', '_similar_to'}
DOG, CANINE, DOMESTIC_ANIMAL, CANIS = 'n02084071', 'n02083346', 'n01317541', 'n02083863'


def _kg(tfds_dir, **fields):
  c = kg.kg_config()
  c.tfds_dir = str(tfds_dir)
  c.update(fields)
  return c


@pytest.fixture(scope='module')
def wordnet(tmp_path_factory):
  return kg.load_graph(_kg(tmp_path_factory.mktemp('tfds')))


def _triples(graph, split):
  """The split's triples as key strings."""
  e, r = graph.entities, graph.relations
  return [(e[h], r[x], e[t]) for h, x, t in graph.splits[split].tolist()]


def test_shipped_graph_counts_as_documented(wordnet):
  assert wordnet.info['triples'] == {'train': 167_739, 'valid': 3_000, 'test': 3_000}
  assert (wordnet.num_entities, wordnet.num_relations) == (112_199, 11)
  assert set(wordnet.relations) == WN18RR_RELATIONS
  assert wordnet.info['skipped_unseen'] == {'train': 0, 'valid': 0, 'test': 0}
  assert all(a.dtype == np.int32 and a.shape[1] == 3 for a in wordnet.splits.values())
  assert not wordnet.splits['train'].flags.writeable  # shared by the cache: read-only
  # The same files give the same ids: the fingerprint pins vocabulary, split and order.
  assert wordnet.fingerprint == '02b01527740dd5dc'
  assert kg.__doc__.count('112,199') == 1 and '167,739' in kg.__doc__


def test_shipped_graph_directions_and_names(wordnet):
  train = set(_triples(wordnet, 'train'))
  # A pointer is read from the synset it leaves: dog's hypernyms, its genus's member meronym.
  assert {(DOG, '_hypernym', CANINE), (DOG, '_hypernym', DOMESTIC_ANIMAL),
          (CANIS, '_member_meronym', DOG)} <= train
  assert (CANINE, '_hypernym', DOG) not in train  # no hyponym triples (inverse of hypernym)
  assert wordnet.names[DOG] == 'dog' and wordnet.names['n09119277'] == 'New York'
  synset = kg.load_synsets()[DOG]
  assert synset.lexname == 'noun.animal' and synset.lemmas[:2] == ('dog', 'domestic_dog')
  assert synset.senses[0] == 1 and synset.examples == ('the dog barked all night',)
  assert synset.definition.startswith('a member of the genus Canis')
  assert len(kg.load_synsets()) == 117_659


def test_shipped_split_has_no_leakage(wordnet):
  splits = {s: _triples(wordnet, s) for s in knowledge_graph.SPLITS}
  every = [x for triples in splits.values() for x in triples]
  assert len(every) == len(set(every))  # no triple twice, within or across splits
  # No pair linked both ways by one relation (symmetric ones keep a single direction), so a
  # triple's inverse is never in another split: the inverse of a held-out triple is nowhere.
  pairs = {(h, r, t) for h, r, t in every}
  assert not [x for x in pairs if x[0] != x[2] and (x[2], x[1], x[0]) in pairs]
  train_entities = {e for h, _, t in splits['train'] for e in (h, t)}
  for split in ('valid', 'test'):
    assert {e for h, _, t in splits[split] for e in (h, t)} <= train_entities
    assert {r for _, r, _ in splits[split]} <= {r for _, r, _ in splits['train']}
  # Every relation is held out somewhere; the split is not one relation's.
  held = collections.Counter(r for s in ('valid', 'test') for _, r, _ in splits[s])
  assert held['_hypernym'] > 1000 and len(held) >= 9


def test_shipped_split_is_the_documented_algorithm(wordnet):
  every = sorted(x for s in knowledge_graph.SPLITS for x in _triples(wordnet, s))
  recomputed = make_wordnet.split(every)
  for split in knowledge_graph.SPLITS:
    assert sorted(recomputed[split]) == sorted(_triples(wordnet, split)), split


def test_shipped_graph_read_back_through_array_record(tmp_path):
  read = knowledge_graph.load_triples(knowledge_graph.config('wordnet'), str(tmp_path))
  with lzma.open(os.path.join(knowledge_graph.WORDNET_DIR, 'valid.txt.xz'), 'rt') as f:
    assert read['valid'][0].tolist() == [line.rstrip('\n').split('\t') for line in f]
  assert read['valid'][1].tolist() == list(range(1, 3001))  # line numbers
  built = [f for d, _, names in os.walk(tmp_path) for f in names]
  assert any('.array_record-' in f for f in built)


def _write_graph(directory, train='a\tr\tb\nb\tr\tc\nc\ts\ta\n', valid='a\tr\tc\n',
                 test='b\ts\ta\n', opener=open, ext='.txt'):
  os.makedirs(directory, exist_ok=True)
  for split, text in (('train', train), ('valid', valid), ('test', test)):
    if text is not None:
      with opener(os.path.join(directory, split + ext), 'wt', encoding='utf-8') as f:
        f.write(text)
  return str(directory)


def test_tsv_graph_ids_and_info(tmp_path):
  d = _write_graph(tmp_path / 'g', train='a\tr\tb\n\nb\tr\tc\r\nc\ts\ta\n')  # blank, CRLF
  graph = kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d))
  assert graph.entities == ('a', 'b', 'c') and graph.relations == ('r', 's')
  assert graph.splits['train'].tolist() == [[0, 0, 1], [1, 0, 2], [2, 1, 0]]
  assert graph.splits['valid'].tolist() == [[0, 0, 2]]
  assert graph.splits['test'].tolist() == [[1, 1, 0]]
  assert graph.names == {} and graph.info['triples'] == {'train': 3, 'valid': 1, 'test': 1}
  assert graph.info['source'] == 'tsv' and graph.info['dir'] == d
  # gzip'd files are the same graph (same fingerprint); an edit is a new one.
  z = _write_graph(tmp_path / 'z', train='a\tr\tb\n\nb\tr\tc\r\nc\ts\ta\n', opener=gzip.open,
                   ext='.txt.gz')
  assert kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=z)).fingerprint == \
      graph.fingerprint
  _write_graph(d, test='c\ts\ta\n')
  changed = kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d))
  assert changed.splits['test'].tolist() == [[2, 1, 0]]
  assert changed.fingerprint != graph.fingerprint


def test_tsv_empty_held_out_split_reads_back_empty(tmp_path):
  d = _write_graph(tmp_path / 'g', valid='', test='\n')
  graph = kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d))
  assert graph.splits['valid'].shape == graph.splits['test'].shape == (0, 3)


def test_malformed_line_names_file_and_line(tmp_path):
  d = _write_graph(tmp_path / 'g', valid='a\tr\tc\na r c\n')
  with pytest.raises(ValueError) as e:
    kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d))
  assert str(e.value).startswith(f"{d}/valid.txt, line 2: 'a r c' is not a triple")
  assert 'head<TAB>relation<TAB>tail' in str(e.value)
  _write_graph(d, valid='a\tr\tc\n', train='a\tr\tb\na\t\tb\n')  # an empty field
  with pytest.raises(ValueError, match=r'train\.txt, line 2: .* is not a triple'):
    kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d))


def test_unseen_entity_skipped_and_counted(tmp_path, capsys):
  d = _write_graph(tmp_path / 'g', valid='a\tr\tc\na\tr\tzebra\n', test='b\tnew_rel\ta\n')
  graph = kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d, unseen='skip'))
  assert graph.splits['valid'].tolist() == [[0, 0, 2]] and graph.splits['test'].shape == (0, 3)
  assert graph.info['skipped_unseen'] == {'train': 0, 'valid': 1, 'test': 1}
  out = capsys.readouterr().out
  assert 'skipped 1 valid and 1 test triples' in out and 'valid.txt, line 2: a  r  zebra' in out
  assert 'zebra' not in graph.entities and 'new_rel' not in graph.relations


def test_unseen_entity_error_names_triples_and_fix(tmp_path):
  d = _write_graph(tmp_path / 'g', valid='a\tr\tzebra\n')
  with pytest.raises(ValueError) as e:
    kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d, unseen='error'))
  assert 'valid.txt, line 1: a  r  zebra' in str(e.value)
  assert "kg.unseen='skip'" in str(e.value)


def test_empty_graph(tmp_path):
  d = _write_graph(tmp_path / 'g', train='\n\n', valid='', test='')
  with pytest.raises(ValueError, match=r'train\.txt holds no triples: the graph is empty'):
    kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d))


def test_missing_or_doubled_files(tmp_path):
  d = _write_graph(tmp_path / 'g', test=None)
  with pytest.raises(FileNotFoundError, match=r"has no test\.txt; .*found: \['train\.txt', "
                     r"'valid\.txt'\]"):
    kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d))
  _write_graph(d, test='a\tr\tb\n')
  _write_graph(d, train=None, valid=None, test='a\tr\tb\n', opener=gzip.open, ext='.txt.gz')
  with pytest.raises(FileNotFoundError, match=r'both test\.txt and test\.txt\.gz'):
    kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=d))
  with pytest.raises(FileNotFoundError, match='is not a directory'):
    kg.load_graph(_kg(tmp_path / 'tfds', source='tsv', dir=str(tmp_path / 'nowhere')))


def test_config_errors_name_the_fix(tmp_path):
  with pytest.raises(ValueError, match="kg.source='tsv' needs kg.dir"):
    kg.load_graph(_kg(tmp_path, source='tsv'))
  with pytest.raises(ValueError, match="kg.source='freebase': use 'wordnet'"):
    kg.load_graph(_kg(tmp_path, source='freebase'))
  with pytest.raises(ValueError, match="kg.unseen='drop': use 'skip'"):
    kg.load_graph(_kg(tmp_path, unseen='drop'))
  with pytest.raises(ValueError, match="set kg.source='tsv' to read kg.dir"):
    kg.load_graph(_kg(tmp_path, dir=str(tmp_path)))


def test_kg_config_documents_every_field():
  import inspect  # pylint: disable=g-import-not-at-top
  source = inspect.getsource(kg.kg_config)
  for field in kg.kg_config():
    line = next(l for l in source.splitlines() if f'c.{field} =' in l)
    assert '#' in line, field
