"""The step contract: several heads with their own loss weights, accumulation over
heads, frozen extras (read by the step, never updated or saved), AdamW's decay mask."""
import flax.linen as nn
from flax import traverse_util
import ml_collections
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec

from plm import checkpoint, masks, models, train
from plm.data.rows import Rows
from plm.objectives import base, clm, mlm

V, B, L = 50, 8, 12


def encoder_config():
  c = models.config('encoder_lm')
  c.size, c.max_len, c.dropout, c.attention_dropout, c.num_segments = 'test', L, 0.0, 0.0, 0
  return c


def rows(n=32, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(4, V, (n, L)).astype(np.int32)
  tokens[:, 0] = 1  # bos
  ones = np.ones_like(tokens)
  return Rows(dict(tokens=tokens, segment_ids=ones, positions=np.tile(np.arange(L), (n, 1))))


def two_heads(with_extras=False) -> base.Objective:
  """Head 'mlm' (masked tokens) and head 'clm' (next tokens) of one model in one step;
  with extras, the clm targets go through a frozen id table (a stand-in for a teacher)."""
  masked = mlm.make(mask_id=3, vocab_size=V, special_ids=(0, 1, 2, 3), num_predictions=4)
  causal = clm.make()

  def prepare(rng, batch, extras):
    a_inputs, a_ids, a_w = masked(rng, batch)
    b_inputs, b_ids, b_w = causal(rng, batch)
    if with_extras:
      b_ids = extras['table'][b_ids]
    return dict(a=a_inputs, b=b_inputs), dict(mlm=dict(ids=a_ids, weights=a_w),
                                              clm=dict(ids=b_ids, weights=b_w))

  def loss(model_fn, inputs, targets, extras):
    del extras
    sums = {}
    for head, key in (('mlm', 'a'), ('clm', 'b')):
      t = targets[head]
      sums.update(base.prediction_sums(head, model_fn(**inputs[key]), t['ids'], t['weights']))
    return sums

  make_extras = None
  if with_extras:  # a permutation of the vocabulary, sharded like an embedding table
    table = np.random.default_rng(1).permutation(V).astype(np.int32)
    make_extras = lambda: {'table': nn.LogicallyPartitioned(jnp.asarray(table), ('vocab',))}
  return base.Objective(prepare, loss, ('mlm', 'clm'), make_extras)


class TwoInputModel(nn.Module):
  """EncoderLM called on either head's inputs (init sees head a's)."""
  lm: nn.Module

  @nn.compact
  def __call__(self, a=None, b=None, **inputs):
    inputs = inputs or a
    return self.lm(**inputs)


def sgd_delta(weights, accum_steps=1):
  """Parameter change of one plain SGD step (lr 1) with the given head weights."""
  model = models.build(encoder_config(), V)
  objective = two_heads()
  batch = jax.tree_util.tree_map(jnp.asarray, rows().batch(0, B, seed=0))
  rng = jax.random.PRNGKey(0)
  inputs, _ = objective.prepare(rng, batch, {})
  params = model.init(rng, **inputs['a'])['params']
  params = nn.unbox(params)
  step, _ = train.make_steps(model, objective, optax.sgd(1.0), accum_steps, weights)
  state = dict(params=params, opt_state=optax.sgd(1.0).init(params), step=jnp.int32(0),
               rng=rng)
  new, metrics = jax.jit(step)(state, {}, batch)
  return jax.tree_util.tree_map(jnp.subtract, new['params'], params), metrics


def test_loss_weights_scale_each_head_linearly():
  only_a, m_a = sgd_delta(dict(mlm=1.0, clm=0.0))
  only_b, _ = sgd_delta(dict(mlm=0.0, clm=1.0))
  mixed, m = sgd_delta(dict(mlm=2.0, clm=3.0))
  for x, a, b in zip(*map(jax.tree_util.tree_leaves, (mixed, only_a, only_b))):
    np.testing.assert_allclose(x, 2 * a + 3 * b, atol=1e-6)
  # The reported loss is the weighted sum of each head's mean; each head's is its own.
  np.testing.assert_allclose(m['loss'], 2 * m['mlm/loss'] + 3 * m['clm/loss'], rtol=1e-6)
  np.testing.assert_allclose(m_a['mlm/loss'], m['mlm/loss'], rtol=1e-6)
  assert m['mlm/loss'] != pytest.approx(m['clm/loss'])  # two different heads


def test_accumulation_keeps_each_heads_mean():
  one, m1 = sgd_delta(dict(mlm=1.0, clm=0.5))
  four, m4 = sgd_delta(dict(mlm=1.0, clm=0.5), accum_steps=4)
  for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(four)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  for k in ('loss', 'mlm/loss', 'clm/loss', 'mlm/accuracy'):
    np.testing.assert_allclose(m1[k], m4[k], rtol=1e-6)


def test_unknown_loss_weight_is_named():
  with pytest.raises(ValueError, match=r"names \['nsp'\].*heads \['mlm', 'clm'\]"):
    base.loss_weights(two_heads(), {'nsp': 1.0})


@pytest.mark.e2e
def test_extras_are_sharded_read_and_never_saved(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.model = encoder_config()
  config.train.steps, config.train.checkpoint_every, config.train.eval_every = 3, 3, 0
  objective = two_heads(with_extras=True)

  task = train.Task('toy', TwoInputModel(models.build(config.model, V)), config.model,
                    objective, rows(), lambda split: {'toy': rows(16, seed=2)},
                    meta=dict(vocab='toy', vocab_size=V))
  s = train.setup(config, task)
  assert s.extras['table'].sharding.spec == PartitionSpec('model')  # 'vocab' -> 'model'
  before = np.asarray(s.extras['table'])
  results = train.train_and_evaluate(config, str(tmp_path), task)
  assert set(results['test']['toy']) == {'mlm', 'clm'}
  # The clm head's targets went through the frozen table: its unigram-free accuracy
  # on permuted ids is computed against table[ids], and the table did not move.
  np.testing.assert_array_equal(np.asarray(s.extras['table']), before)
  mngr = checkpoint.manager(str(tmp_path))
  _, saved, _ = checkpoint.saved_params(mngr.directory)
  assert 'table' not in str(jax.tree_util.tree_structure(saved))
  state_keys = set(dict(checkpoint._reader(mngr.directory).item_metadata(3)['state']))  # pylint: disable=protected-access
  assert state_keys == {'params', 'opt_state', 'step', 'rng'}


def test_adamw_decays_by_name_not_rank():
  model = models.build(encoder_config(), V)
  tokens = jnp.ones((1, L), jnp.int32)
  params = nn.unbox(model.init(jax.random.PRNGKey(0), tokens, jnp.zeros_like(tokens),
                               masks.padding_mask(tokens > 0))['params'])
  mask = train.decay_mask(params)
  flat = {'/'.join(k): v for k, v in
          traverse_util.flatten_dict(mask).items()}
  qkv_bias = [f'encoder/layer_0/self_attention/{n}/bias' for n in ('query', 'key', 'value')]
  assert all(params_leaf(params, k).ndim == 2 for k in qkv_bias)  # [heads, head_dim]
  assert not any(v for k, v in flat.items() if k.endswith(('bias', 'scale')))
  assert all(v for k, v in flat.items() if k.endswith(('kernel', 'embedding')))
  # One AdamW step with zero gradients: only weight decay moves parameters.
  c = ml_collections.ConfigDict(dict(lr=0.1, warmup_steps=0, total_steps=10, schedule='linear',
                                     b1=0.9, b2=0.98, eps=1e-6, weight_decay=0.5, grad_clip=1.0))
  tx = train.make_optimizer(c)
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  moved = {'/'.join(k): bool(np.any(np.asarray(v) != 0))
           for k, v in traverse_util.flatten_dict(updates).items()}
  nonzero = lambda k: bool(np.any(np.asarray(params_leaf(params, k)) != 0))
  for k in flat:
    assert moved[k] == (flat[k] and nonzero(k)), k


def params_leaf(params, path):
  for part in path.split('/'):
    params = params[part]
  return params
