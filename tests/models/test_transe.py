"""TransE (plm/models/transe.py), its objective (plm/objectives/transe.py) and the transe
job (plm/jobs/transe.py): hand-computed scores and losses, negatives, the epoch order of
triple rows, and a tiny graph learnt through the one loop to well above random MRR."""
import dataclasses
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plm
from plm import models, train
from plm.data import kg
from plm.data.kg import Graph
from plm.jobs import transe as job
from plm.models import transe as transe_model
from plm.objectives import base
from plm.objectives import transe as transe_objective

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Three entities in the plane; the third is stored with norm 5 and scored as (0.6, 0.8).
PARAMS = {'entities': jnp.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]]),
          'relations': jnp.array([[0.5, -0.5]])}


def model(norm=1):
  return transe_model.TransE(num_entities=3, num_relations=1, dim=2, norm=norm)


@pytest.mark.parametrize('norm, expected', [
    # h + r - t = (1.5, -1.5) and (1.5, -0.5) - (0.6, 0.8) = (0.9, -1.3)
    (1, [-3.0, -2.2]), (2, [-np.sqrt(4.5), -np.sqrt(2.5)])])
def test_scores_by_hand(norm, expected):
  scores = model(norm).apply({'params': PARAMS}, heads=jnp.array([[0, 0]]),
                             relations=jnp.array([[0, 0]]), tails=jnp.array([[1, 2]]))
  np.testing.assert_allclose(scores, [expected], rtol=1e-6)
  entities, relations = model(norm).apply({'params': PARAMS}, method='tables')
  np.testing.assert_allclose(entities, [[1, 0], [0, 1], [0.6, 0.8]], rtol=1e-6)
  np.testing.assert_allclose(relations, PARAMS['relations'])


def test_init_is_unit_rows_with_logical_axes():
  m = transe_model.TransE(num_entities=50, num_relations=4, dim=8)
  boxed = jax.eval_shape(m.init, jax.random.PRNGKey(0), jnp.zeros((2, 3), jnp.int32),
                         jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 3), jnp.int32))['params']
  assert boxed['entities'].names == ('vocab', 'embed')  # rows shard like a token table
  assert boxed['relations'].names == ('classes', 'embed')
  params = m.init(jax.random.PRNGKey(0), *[jnp.zeros((2, 3), jnp.int32)] * 3)['params']
  for table in jax.tree_util.tree_leaves(params):  # leaves are the unboxed arrays
    np.testing.assert_allclose(np.linalg.norm(table, axis=1), 1.0, rtol=1e-5)


@pytest.mark.model
def test_negative_scores_match_plain_triples_on_both_normalisation_paths():
  """Scores [B, 1 + K] of positives and corruptions equal scoring each triple alone, and the
  two ways of normalising (whole table / gathered rows) agree, gradients included."""
  rng = np.random.default_rng(0)
  heads, tails = jnp.array(rng.integers(0, 9, 4)), jnp.array(rng.integers(0, 9, 4))
  rels, new = jnp.array(rng.integers(0, 2, 4)), jnp.array(rng.integers(0, 9, (4, 3)))
  side = jnp.array(rng.random((4, 3)) < 0.5)
  inputs = dict(heads=heads, relations=rels, tails=tails, replacements=new, replace_head=side)
  big = transe_model.TransE(num_entities=40, num_relations=2, dim=5)
  params = nn.unbox(big.init(jax.random.PRNGKey(1), heads, rels, tails)['params'])
  small = transe_model.TransE(num_entities=9, num_relations=2, dim=5)
  small_params = dict(params, entities=params['entities'][:9])
  # 4 + 4 + 12 ids: >= 9 entities normalises the whole table, < 40 the gathered rows
  scores = big.apply({'params': params}, **inputs)
  np.testing.assert_allclose(small.apply({'params': small_params}, **inputs), scores,
                             rtol=1e-6)
  h = jnp.concatenate([heads[:, None], jnp.where(side, new, heads[:, None])], 1)
  t = jnp.concatenate([tails[:, None], jnp.where(side, tails[:, None], new)], 1)
  plain = big.apply({'params': params}, h, jnp.broadcast_to(rels[:, None], h.shape), t)
  np.testing.assert_allclose(scores, plain, rtol=1e-6)
  grad = lambda m, p: jax.grad(lambda p: jnp.sum(jnp.sin(m.apply({'params': p}, **inputs))))(p)
  g_big, g_small = grad(big, params), grad(small, small_params)
  np.testing.assert_allclose(g_small['entities'], g_big['entities'][:9], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g_small['relations'], g_big['relations'], rtol=1e-5, atol=1e-6)
  assert not np.any(g_big['entities'][9:])  # entities never drawn get no gradient


def test_margin_loss_by_hand():
  """Positive (0, 0, 1) scores -3.0, negative (0, 0, 2) -2.2 (L1): the negative wins by 0.8."""
  inputs = dict(heads=jnp.array([[0, 0]]), relations=jnp.array([[0, 0]]),
                tails=jnp.array([[1, 2]]))
  fn = base.ModelFn(model(), {'params': PARAMS}, {}, True)
  for margin, loss in ((1.0, 1.8), (0.5, 1.3), (-1.0, 0.0)):
    obj = transe_objective.objective(num_entities=3, margin=margin)
    sums = obj.loss(fn, inputs, {'transe': dict(weights=jnp.ones((1, 1)))}, {})
    assert float(sums['transe/loss']) == pytest.approx(loss, abs=1e-6)
    assert float(sums['transe/weight']) == 1.0 and float(sums['transe/correct']) == 0.0
  # weight 0 (a padding row of a held-out pass) counts nothing
  sums = obj.loss(fn, inputs, {'transe': dict(weights=jnp.zeros((1, 1)))}, {})
  assert float(sums['transe/loss']) == float(sums['transe/weight']) == 0.0


def batch_of(triples):
  t = np.asarray(triples, np.int32)
  return dict(heads=t[:, 0], relations=t[:, 1], tails=t[:, 2], valid=np.ones(len(t), np.int32))


@pytest.mark.parametrize('p', [0.0, 0.5, 1.0])
def test_negatives_corrupt_one_side_never_the_positive(p):
  batch = batch_of([[3, 1, 7]] * 400)
  out = transe_objective.corrupt(jax.random.PRNGKey(0), batch, 10, 5, jnp.full((400,), p))
  h, r, t = (np.asarray(out[k]) for k in ('heads', 'relations', 'tails'))
  assert (h == 3).all() and (t == 7).all() and (r == 1).all()  # the positives, kept
  new, head_side = np.asarray(out['replacements']), np.asarray(out['replace_head'])
  assert new.shape == head_side.shape == (400, 5)
  assert head_side.mean() == pytest.approx(p, abs=0.03)
  assert not (new[head_side] == 3).any() and not (new[~head_side] == 7).any()  # never the old
  if p == 0.5:  # the replacement is uniform over the 9 other entities
    counts = np.bincount(new[head_side], minlength=10)
    assert counts[3] == 0 and counts.min(initial=999, where=np.arange(10) != 3) > 60


def test_prepare_weights_pairs_and_needs_the_triple_keys():
  obj = transe_objective.objective(num_entities=10, negatives=3)
  batch = batch_of([[0, 0, 1], [2, 0, 3]])
  batch['valid'] = np.array([1, 0], np.int32)
  inputs, targets = obj.prepare(jax.random.PRNGKey(0), batch, {})
  assert inputs['heads'].shape == (2,) and inputs['replacements'].shape == (2, 3)
  np.testing.assert_array_equal(targets['transe']['weights'], [[1, 1, 1], [0, 0, 0]])
  with pytest.raises(ValueError, match='valid'):
    obj.prepare(jax.random.PRNGKey(0), {k: v for k, v in batch.items() if k != 'valid'}, {})


def test_bern_probabilities_by_hand():
  # relation 0: one head, three tails (tph 3, hpt 1) -> corrupt the head 3/4 of the time;
  # relation 1: two heads into one tail (tph 1, hpt 2) -> 1/3; relation 2: no triples -> 1/2
  triples = np.array([[0, 0, 1], [0, 0, 2], [0, 0, 3], [4, 1, 5], [6, 1, 5]])
  np.testing.assert_allclose(transe_objective.head_probabilities(triples, 3, 'bern'),
                             [0.75, 1 / 3, 0.5], rtol=1e-6)
  np.testing.assert_array_equal(transe_objective.head_probabilities(triples, 3, 'uniform'), 0.5)
  with pytest.raises(ValueError, match='sampler'):
    transe_objective.head_probabilities(triples, 3, 'bernoulli')


def test_bad_settings_are_one_clear_error():
  with pytest.raises(ValueError, match='negatives'):
    transe_objective.objective(num_entities=10, negatives=0)
  with pytest.raises(ValueError, match='at least 2 entities'):
    transe_objective.objective(num_entities=1)
  mc = models.config('transe')
  with pytest.raises(ValueError, match='num_entities'):
    models.build(mc, 10)
  mc.update(num_entities=10, num_relations=2, norm=3)
  with pytest.raises(ValueError, match='norm'):
    models.build(mc, 10)


def test_triple_rows_epochs_cover_every_row_once():
  rows = kg.triple_rows(np.arange(30).reshape(10, 3))
  seen = np.concatenate([rows.batch(s, 4, seed=1)['heads'] for s in range(5)])  # 2 epochs
  assert sorted(seen[:10]) == sorted(seen[10:]) == list(range(0, 30, 3))
  assert (seen[:10] != seen[10:]).any()  # reshuffled
  np.testing.assert_array_equal(rows.batch(3, 4, seed=1)['heads'],
                                kg.triple_rows(np.arange(30).reshape(10, 3))
                                .batch(3, 4, seed=1)['heads'])  # a function of (seed, step)
  halves = [rows.batch(2, 4, seed=1, process_index=i, process_count=2)['heads'] for i in (0, 1)]
  np.testing.assert_array_equal(np.concatenate(halves), rows.batch(2, 4, seed=1)['heads'])


def cluster_graph(clusters=8, size=12, links=3, seed=0) -> Graph:
  """Entities 0..7 are hubs; each hub has 12 members linked to it by 'in' and to 3 other
  members of their cluster by 'near'. Held out: 2 'in' triples per cluster, learnable only
  through the members' 'near' neighbours."""
  rng = np.random.default_rng(seed)
  members = clusters + np.arange(clusters * size).reshape(clusters, size)
  held = np.array([(m[i], 0, h) for h, m in enumerate(members) for i in (0, 1)], np.int32)
  seen = [(x, 0, h) for h, m in enumerate(members) for x in m[2:]]
  near = sorted({(x, 1, y) for m in members for x in m
                 for y in rng.choice(m[m != x], links, replace=False)})
  train_triples = np.array(seen + near, np.int32)
  rng.shuffle(train_triples)
  rng.shuffle(held)
  n = clusters * (size + 1)
  return Graph(tuple(f'e{i}' for i in range(n)), ('in', 'near'),
               dict(train=train_triples, valid=held[:clusters], test=held[clusters:]),
               {}, {}, 'clusters')


def tiny_config():
  from configs import transe  # pylint: disable=g-import-not-at-top
  return transe.get_config('tiny')


@pytest.mark.model
def test_tiny_graph_learns_far_above_random(tmp_path):
  """300 steps through the one loop: filtered test MRR from ~random to near 1."""
  graph, config = cluster_graph(), tiny_config()
  task = job.make_task(config, graph, str(tmp_path))
  evaluator = task.evaluators[0][2]
  s = train.setup(config, task)
  before = evaluator(s.init(jax.random.PRNGKey(0), s.extras)['params'], 'test')
  results = train.train_and_evaluate(config, str(tmp_path), task)
  after = results['link_prediction']
  # random ranking of 104 entities: MRR ~ H(104) / 104 = 0.05
  assert before['both']['mrr'] < 0.2, before
  assert after['both']['mrr'] > 0.6 and after['both']['hits@10'] > 0.9, after
  assert results['test']['kg']['transe']['accuracy'] > 0.9  # held-out pairwise accuracy
  vectors = transe_model.load_vectors(results['entity_vectors'])
  assert vectors.entity_keys == graph.entities and vectors.fingerprint == 'clusters'
  assert vectors.entities.shape == (104, 32) and vectors.norm == 1
  np.testing.assert_allclose(np.linalg.norm(vectors.entities, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(vectors.lookup(['e3', 'e0']), [3, 0])
  with pytest.raises(ValueError, match='not in the TransE export'):
    vectors.lookup(['e0', 'n_missing'])
  job.check_workdir(str(tmp_path), graph)  # resuming on the same graph is fine
  with pytest.raises(ValueError, match='a new --workdir'):
    job.check_workdir(str(tmp_path), dataclasses.replace(graph, fingerprint='another'))
  # plm.load reads the run without a vocabulary: the graph's entities are its inputs
  run = plm.load(str(tmp_path))
  assert run.tokenizer is None and run.methods() == ('entity_vectors',)
  np.testing.assert_allclose(run.entity_vectors(), vectors.entities, rtol=1e-6, atol=1e-7)
  with pytest.raises(plm.UserError, match=r"model.name='transe', which has no .embed\(\); its "
                                          r"methods are \['entity_vectors'\]"):
    run.embed(['e0'])


def test_graph_and_model_sizes_must_agree(tmp_path):
  config = tiny_config()
  config.model.num_entities = 7
  with pytest.raises(ValueError, match='num_entities=7 but the graph has 104'):
    job.make_task(config, cluster_graph(), str(tmp_path))
  with pytest.raises(FileNotFoundError, match='transe job'):
    transe_model.load_vectors(str(tmp_path / 'none.npz'))


@pytest.mark.e2e
def test_cli_trains_a_user_tsv_graph(tmp_path):
  """configs/transe.py:tiny on TSV files (kg.source=tsv): results.json and the export."""
  graph = cluster_graph()
  data = tmp_path / 'graph'
  data.mkdir()
  for split, name in (('train', 'train'), ('valid', 'valid'), ('test', 'test')):
    (data / f'{name}.txt').write_text(''.join(
        f'{graph.entities[h]}\t{graph.relations[r]}\t{graph.entities[t]}\n'
        for h, r, t in graph.splits[split].tolist()))
  work = tmp_path / 'run'
  proc = subprocess.run(
      [sys.executable, '-m', 'plm.main', '--config=configs/transe.py:tiny',
       '--config.kg.source=tsv', f'--config.kg.dir={data}',
       f'--config.kg.tfds_dir={tmp_path / "tfds"}', f'--workdir={work}'],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads((work / 'results.json').read_text())
  assert results['link_prediction']['both']['mrr'] > 0.6, results['link_prediction']
  assert results['graph'] == transe_model.load_vectors(str(work / 'entities.npz')).fingerprint
  assert 'link prediction, test' in proc.stdout


SHARDED = r'''
import json, os, sys
os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=4'
import jax, numpy as np
sys.path[:0] = [{repo!r}, {here!r}]
from test_transe import cluster_graph, tiny_config
from plm import train
from plm.jobs import transe as job
graph, losses = cluster_graph(), []
for data, model in ((1, 1), (2, 2)):
  c = tiny_config()
  c.mesh.update(data=data, fsdp=1, model=model)
  task = job.make_task(c, graph, {work!r})
  s = train.setup(c, task, devices=jax.devices()[:data * model])
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(0), s.extras)
    spec = state['params']['entities'].sharding.spec
    shard = state['params']['entities'].addressable_shards[0].data.shape
    run = []
    for step in range(10):
      state, m = s.train_step(state, s.extras, s.put(task.train_rows.batch(step, 256, seed=0)))
      run.append(float(m['loss']))
  losses.append(run)
print('RESULT', json.dumps(dict(spec=list(spec), shard=list(shard),
                                diff=float(np.max(np.abs(np.subtract(*losses)))))))
'''


@pytest.mark.e2e
def test_entity_table_shards_over_the_model_axis(tmp_path):
  """On 4 fake devices (data=2, model=2) the entity rows split over 'model' and the loss
  is the single-device loss."""
  code = SHARDED.format(repo=REPO, here=os.path.dirname(__file__), work=str(tmp_path))
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                        timeout=300, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stdout.splitlines() if l.startswith('RESULT '))
  got = json.loads(line[len('RESULT '):])
  assert got['spec'] == ['model', 'fsdp']  # 'vocab' -> model, 'embed' -> fsdp (size 1)
  assert got['shard'] == [52, 32]  # 104 entity rows split in two
  assert got['diff'] < 1e-5
