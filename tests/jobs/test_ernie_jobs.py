"""ERNIE end to end on configs/ernie.py:tiny: pre-training (MLM + NSP + dEA) on the linked
corpus, fine-tuning to entity typing from it, the BERT baseline, and the bad-input errors.

The entity vectors are a random TransE export of the shipped graph (the real one takes
~8 minutes to train; what is tested here is the plumbing and that the heads learn)."""
import numpy as np
import pytest

from configs import ernie as ernie_config
import plm
from plm.data import kg
from plm.jobs import ernie
from plm.models import transe

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def vectors(tiny_config, tmp_path_factory):
  c = kg.kg_config()
  c.tfds_dir = tiny_config.data.tfds_dir
  graph = kg.load_graph(c)
  table = np.random.default_rng(0).normal(size=(len(graph.entities), 8)).astype(np.float32)
  table /= np.linalg.norm(table, axis=1, keepdims=True)
  path = str(tmp_path_factory.mktemp('transe') / 'entities.npz')
  transe.save_vectors(path, table, np.zeros((len(graph.relations), 8)), norm=1,
                      entity_keys=graph.entities, relation_keys=graph.relations,
                      fingerprint=graph.fingerprint)
  return path


def ernie_tiny(tiny_config, vectors, corpus_dir, **overrides):
  c = ernie_config.get_config('tiny')
  c.data.tfds_dir = c.kg.tfds_dir = tiny_config.data.tfds_dir
  c.data.vocab_path = tiny_config.data.vocab_path
  c.ernie.entity_vectors, c.ernie.corpus_dir = vectors, corpus_dir
  c.ernie.max_pairs, c.train.steps, c.train.checkpoint_every = 300, 80, 80
  c.ernie.max_sentences, c.ernie.max_examples, c.ernie.max_eval_examples = 1500, 600, 200
  c.finetune.steps = 40
  for k, v in overrides.items():
    c[k.split('.')[0]][k.split('.')[1]] = v
  return c


@pytest.fixture(scope='module')
def pretrained(tiny_config, vectors, tmp_path_factory):
  corpus = str(tmp_path_factory.mktemp('linked'))
  workdir = str(tmp_path_factory.mktemp('ernie'))
  config = ernie_tiny(tiny_config, vectors, corpus)
  return config, workdir, corpus, ernie.ernie_job(config, workdir)


def test_pretraining_learns_every_head(pretrained):
  _, _, _, results = pretrained
  t = results['test']['linked']
  assert set(t) == {'mlm', 'nsp', 'dea'}
  assert t['mlm']['loss'] < t['mlm']['unigram_loss']  # 80 steps beat the unigram baseline
  # dEA: ~160 distinct candidate entities a batch; 80% of the inputs keep their entity
  assert t['dea']['accuracy'] > 0.3
  assert results['train_info']['graph'] and results['train_info']['bible']['pairs'] == 300 - \
      results['train_info']['bible']['too_long']


def test_fine_tunes_entity_typing_from_the_pretrained_run(pretrained, tmp_path):
  config, workdir, corpus, _ = pretrained
  config = config.copy_and_resolve_references()
  config.job, config.init_from = 'ernie_finetune', f'{workdir}/checkpoints'
  results = ernie.finetune_job(config, str(tmp_path))
  s = results['scores']
  assert s['labels'][0] == 'noun.person' and s['model']['examples'] == sum(s['test_label_counts'])
  assert s['model']['accuracy'] >= s['majority']['accuracy'] - 0.05
  assert abs(s['model']['micro_f1'] - s['model']['accuracy']) < 1e-6  # single label, no 'none'
  # Both runs load as plm runs (knowledge encoders: nothing to call but the model)
  for path, name in ((workdir, 'ernie'), (str(tmp_path), 'ernie_classifier')):
    loaded = plm.load(path)
    assert loaded.config.model.name == name and loaded.tokenizer is not None
    assert loaded.step > 0
    assert loaded.methods() == ()
    with pytest.raises(plm.UserError, match=f"model.name='{name}', which has no .embed"):
      loaded.embed(['In the beginning'])


def test_bad_inputs_are_one_clear_error(tiny_config, vectors, tmp_path, pretrained):
  _, _, corpus, _ = pretrained
  config = ernie_tiny(tiny_config, vectors, corpus)
  other = str(tmp_path / 'other.npz')
  z = transe.load_vectors(vectors)
  transe.save_vectors(other, z.entities, z.relations, entity_keys=z.entity_keys,
                      relation_keys=z.relation_keys, fingerprint='0123456789abcdef', norm=1)
  config.ernie.entity_vectors = other
  with pytest.raises(ValueError, match='TransE vectors of graph 0123456789abcdef'):
    ernie.knowledge(config)
  config.ernie.entity_vectors = ''
  with pytest.raises(ValueError, match='train TransE first'):
    ernie.knowledge(config)
