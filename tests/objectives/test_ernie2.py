"""ERNIE 2.0's objective and model: knowledge masking units, per-task heads, task embeddings."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks, models
from plm.objectives import ernie2
from plm.objectives.base import ModelFn

SPECIAL = (0, 1, 2, 3, 4)


def test_first_and_last_of_units():
  first, last = ernie2.first_and_last(jnp.array([[0, 3, 3, 0, 4, 4, 4, 5]]))
  np.testing.assert_array_equal(first, [[0, 1, 1, 3, 4, 4, 4, 7]])
  np.testing.assert_array_equal(last, [[0, 2, 2, 3, 6, 6, 6, 7]])


def test_entity_mask_takes_whole_units_within_the_budget():
  units = jnp.array([[0, 1, 1, 0, 2, 2, 2, 3], [0, 1, 1, 0, 2, 2, 2, 3]])
  got = ernie2.entity_mask(jax.random.PRNGKey(0), units, jnp.array([8, 4]), prob=1.0)
  # row 0: every unit; row 1: unit 1 (2 tokens), unit 2 would reach 5 > 4: dropped, and
  # unit 3 would then count 6 (cumulative over drawn units): dropped too
  np.testing.assert_array_equal(got, [[0, 1, 1, 0, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0, 0, 0]])
  none = ernie2.entity_mask(jax.random.PRNGKey(0), units, jnp.array([8, 8]), prob=0.0)
  assert not none.any()


@pytest.mark.model
def test_knowledge_masking_masks_entities_whole_and_hits_the_rate():
  rng = np.random.default_rng(0)
  batch, length = 64, 48
  tokens = rng.integers(5, 100, (batch, length)).astype(np.int32)
  tokens[:, 0], tokens[:, -1] = 2, 3
  units = np.zeros((batch, length), np.int32)
  for b in range(batch):  # five 3-token entities a row
    for k, start in enumerate(range(4, 40, 8)):
      units[b, start:start + 3] = k + 1
  data = dict(tokens=jnp.asarray(tokens), segment_ids=jnp.ones((batch, length), jnp.int32),
              units=jnp.asarray(units))
  km = ernie2.make_knowledge_masking(mask_id=4, vocab_size=100, special_ids=SPECIAL,
                                     num_predictions=14, rate=0.15, entity_share=0.5,
                                     entity_prob=0.5)
  new, positions, targets, weights, masked = km(jax.random.PRNGKey(1), data)
  masked = np.asarray(masked)
  # budget floor(0.15 * 46 + u) in {6, 7}; entities <= 3 tokens, as whole units
  assert set(masked.sum(1).tolist()) <= {6, 7, 8, 9}
  assert abs(masked.sum(1).mean() - 0.15 * 46) < 1.0
  ent = np.zeros_like(masked)
  for b in range(batch):
    for k in range(1, 6):
      cells = masked[b][units[b] == k]
      ent[b] |= (units[b] == k) & cells.all()
  assert ent.any()  # some entities were masked whole
  assert not masked[:, 0].any() and not masked[:, -1].any()  # bos, eos never
  np.testing.assert_array_equal(np.asarray(targets)[np.asarray(weights) > 0],
                                tokens[masked][np.argsort(np.argwhere(masked)[:, 0],
                                                          kind='stable')])


def _model(num_tasks=3):
  mc = models.config('ernie2')
  mc.size, mc.max_len, mc.num_tasks = 'test', 16, num_tasks
  mc.dropout = mc.attention_dropout = 0.0
  mc.task_heads = (('knowledge_masking', 0), ('capitalization', 2), ('sentence_distance', 3))
  return models.build(mc, 50)


def _inputs(tasks):
  tokens = jnp.tile(jnp.arange(5, 21)[None], (len(tasks), 1))
  positions = jnp.broadcast_to(jnp.arange(16), tokens.shape)
  return dict(tokens=tokens, positions=positions,
              mask=masks.padding_mask(jnp.ones_like(tokens, bool)),
              token_types=jnp.zeros_like(tokens),
              tasks=jnp.broadcast_to(jnp.asarray(tasks)[:, None], tokens.shape))


@pytest.mark.model
def test_task_embeddings_change_outputs_only_through_the_task_id():
  model = _model()
  inputs = _inputs([0, 1, 2, 1])
  params = nn.unbox(model.init(jax.random.PRNGKey(0), **inputs)['params'])
  x = model.apply({'params': params}, **inputs)
  # the same tokens: rows differ exactly when their task ids do
  np.testing.assert_allclose(x[1], x[3], atol=1e-6)
  assert float(jnp.abs(x[0] - x[1]).max()) > 1e-2 and float(jnp.abs(x[1] - x[2]).max()) > 1e-2
  # a task's row reads only its own embedding: changing task 2's leaves rows 0, 1, 3 alone
  table = params['encoder']['embeddings']['task']['embedding']
  edited = jax.tree_util.tree_map(lambda a: a, params)
  # not a constant vector: the embeddings' LayerNorm would remove that
  edited['encoder']['embeddings']['task']['embedding'] = table.at[2].add(
      jnp.linspace(-1.0, 1.0, table.shape[1]))
  y = model.apply({'params': edited}, **inputs)
  np.testing.assert_allclose(y[jnp.array([0, 1, 3])], x[jnp.array([0, 1, 3])], atol=1e-6)
  assert float(jnp.abs(y[2] - x[2]).max()) > 1e-2
  # and it is an added embedding: task t's input = task 0's + (e_t - e_0)
  zero = params['encoder']['embeddings']['task']['embedding']
  moved = jax.tree_util.tree_map(lambda a: a, params)
  moved['encoder']['embeddings']['task']['embedding'] = zero.at[0].set(zero[1])
  z = model.apply({'params': moved}, **_inputs([0]))
  np.testing.assert_allclose(z[0], x[1], atol=1e-5)


@pytest.mark.model
def test_each_head_trains_on_its_own_task_rows_only():
  model = _model()
  heads = (('knowledge_masking', 'mlm'), ('capitalization', 'token'),
           ('sentence_distance', 'sentence'))
  km = ernie2.make_knowledge_masking(mask_id=4, vocab_size=50, special_ids=SPECIAL,
                                     num_predictions=4)
  objective = ernie2.make(heads, priors={}, km=km)
  n = 4
  batch = dict(tokens=jnp.tile(jnp.arange(5, 21)[None], (n, 1)),
               segment_ids=jnp.ones((n, 16), jnp.int32),
               positions=jnp.broadcast_to(jnp.arange(16), (n, 16)),
               token_types=jnp.zeros((n, 16), jnp.int32),
               labels=jnp.zeros((n, 16), jnp.int32).at[:, 0].set(jnp.array([0, 1, 2, 5])),
               label_weights=jnp.zeros((n, 16), jnp.int32).at[:, :3].set(1),
               units=jnp.zeros((n, 16), jnp.int32),
               stream=jnp.array([0, 1, 2, 0]))
  inputs, targets = objective.prepare(jax.random.PRNGKey(0), batch, {})
  np.testing.assert_array_equal(targets['capitalization']['weights'].sum(1), [0, 3, 0, 0])
  np.testing.assert_array_equal(targets['sentence_distance']['weights'], [0, 0, 1, 0])
  assert float(targets['knowledge_masking']['weights'][1:3].sum()) == 0
  assert float(targets['knowledge_masking']['weights'][0].sum()) > 0
  # only the knowledge-masking rows are corrupted
  np.testing.assert_array_equal(inputs['tokens'][1:3], batch['tokens'][1:3])
  params = nn.unbox(model.init(jax.random.PRNGKey(0), **inputs)['params'])
  sums = objective.loss(ModelFn(model, {'params': params}, {}, True), inputs, targets, {})
  # label 5 in a row of another task must not reach the 2-class head (it would be NaN)
  assert all(np.isfinite(float(v)) for v in sums.values())
  assert float(sums['capitalization/weight']) == 3 and float(sums['sentence_distance/weight']) == 1


def test_too_few_task_embeddings_is_an_error():
  mc = models.config('ernie2')
  mc.task_heads = (('a', 2), ('b', 2))
  mc.num_tasks = 1
  with pytest.raises(ValueError, match='model.num_tasks=1'):
    models.build(mc, 50)
