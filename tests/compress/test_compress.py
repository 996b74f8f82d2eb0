"""Distillation losses, frozen teacher, structured pruning, int8 (unit and model tiers).

Real text: the first KJV verses under a small BPE vocabulary trained here.
"""
import itertools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks, models
from plm.compress import config as compress_config
from plm.compress import distill, prune, quantize
from plm.compress.student import StudentLM
from plm.data import bible
from plm.data import tokenizer as tokenizer_lib
from plm.models import encoder as encoder_lib
from plm.objectives import base, mlm
from plm.nn import quant
from plm.nn.attention import HeadsDense
from plm.nn.quant import int8_matmul

LEN = 32


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  """A 400-piece BPE on 3000 KJV verses, and 8 verses as rows of LEN tokens."""
  verses = [t for _, _, t in itertools.islice(bible.read_verses('en_kjv'), 3000)]
  tok = tokenizer_lib.load_or_train(str(tmp_path_factory.mktemp('v') / 'spm.model'), verses, 400)
  ids = [tok.encode(v)[:LEN] for v in verses[100:108]]
  tokens = np.zeros((8, LEN), np.int32)
  for r, row in enumerate(ids):
    tokens[r, :len(row)] = row
  batch = dict(tokens=tokens, segment_ids=(tokens > 0).astype(np.int32),
               positions=np.broadcast_to(np.arange(LEN), tokens.shape).astype(np.int32))
  return tok, {k: jnp.asarray(v) for k, v in batch.items()}


def encoder_config(**fields):
  mc = models.config('encoder_lm')
  mc.size, mc.max_len, mc.dropout, mc.attention_dropout = 'test', LEN, 0.0, 0.0
  mc.update(fields)
  return mc


def init(model, batch, seed=0):
  mask = masks.packed_mask(batch['segment_ids'])
  fn = jax.jit(lambda rng: model.init(rng, batch['tokens'], batch['positions'], mask))
  return nn.unbox(fn(jax.random.PRNGKey(seed))['params'])


def objective_for(tok, teacher, student_layers, losses):
  fn = mlm.make(mask_id=tok.mask_id, vocab_size=tok.vocab_size,
                special_ids=(tok.pad_id, tok.bos_id, tok.eos_id, tok.mask_id),
                num_predictions=6)
  return distill.make(base.token_objective('mlm', fn), teacher, student_layers, losses=losses,
                      temperature=2.0)


def test_kl_matches_numpy_and_is_zero_for_equal_logits():
  rng = np.random.RandomState(0)
  s, t = rng.normal(size=(2, 3, 7)), rng.normal(size=(2, 3, 7))
  w = np.array([[1, 1, 0], [1, 0, 1]], np.float32)
  T = 2.0
  sm = lambda x: np.exp(x / T) / np.exp(x / T).sum(-1, keepdims=True)
  ref = (np.sum(sm(t) * (np.log(sm(t)) - np.log(sm(s))), -1) * T * T * w).sum()
  got = distill.kl_sums(jnp.asarray(s), jnp.asarray(t), jnp.asarray(w), T)
  np.testing.assert_allclose(float(got['kl/loss']), ref, rtol=1e-5)
  assert float(got['kl/weight']) == 4
  assert abs(float(distill.kl_sums(jnp.asarray(t), jnp.asarray(t), jnp.asarray(w),
                                   T)['kl/loss'])) < 1e-6


def test_layer_map_is_uniform():
  assert distill.layer_map(3, 12) == [0, 4, 8, 12]
  assert distill.layer_map(2, 8) == [0, 4, 8]
  assert distill.layer_map(1, 2) == [0, 2]


@pytest.mark.model
def test_every_loss_is_zero_when_the_student_is_the_teacher(data):
  """Same weights, identity projection: kl, hidden and attention are 0; mlm is not."""
  tok, batch = data
  teacher = models.build(encoder_config(), tok.vocab_size)
  student = StudentLM(encoder_lib.build_encoder(encoder_config(), tok.vocab_size),
                      teacher_hidden=64)
  t_params = init(teacher, batch)
  s_params = dict(t_params, kd_projection=jnp.broadcast_to(jnp.eye(64), (3, 64, 64)))
  assert set(init(student, batch)) == set(s_params)
  obj = objective_for(tok, teacher, 2, distill.LOSSES)
  inputs, targets = obj.prepare(jax.random.PRNGKey(1), batch, {})
  loss = jax.jit(lambda p, t: obj.loss(base.ModelFn(student, {'params': p}, {}, True), inputs,
                                       targets, {'teacher': t}))
  sums = loss(s_params, t_params)
  for head in ('kl', 'hidden', 'attention'):
    assert abs(float(sums[f'{head}/loss'])) < 1e-5, head
  assert float(sums['mlm/loss']) > 1.0
  assert float(sums['hidden/weight']) == float(jnp.sum(batch['segment_ids'] > 0))
  # a different student: every distillation loss is positive
  other = dict(init(student, batch, seed=3))
  sums = loss(other, t_params)
  for head in ('kl', 'hidden', 'attention'):
    assert float(sums[f'{head}/loss']) > 1e-3, head


@pytest.mark.model
def test_gradients_reach_the_student_and_never_the_teacher(data):
  tok, batch = data
  teacher = models.build(encoder_config(), tok.vocab_size)
  student = StudentLM(encoder_lib.build_encoder(encoder_config(layers=1, hidden=96, ff=256),
                                                tok.vocab_size), teacher_hidden=64)
  t_params, s_params = init(teacher, batch), init(student, batch, seed=1)
  obj = objective_for(tok, teacher, 1, distill.LOSSES)
  inputs, targets = obj.prepare(jax.random.PRNGKey(1), batch, {})

  def total(params, extras):
    sums = obj.loss(base.ModelFn(student, {'params': params}, {}, True), inputs, targets,
                    extras)
    return sum(sums[f'{h}/loss'] for h in obj.heads)

  g_student, g_teacher = jax.jit(jax.grad(total, argnums=(0, 1)))(s_params,
                                                                   {'teacher': t_params})
  assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree_util.tree_leaves(g_teacher))
  flat = flax.traverse_util.flatten_dict(g_student)
  assert float(jnp.max(jnp.abs(flat[('kd_projection',)]))) > 0
  assert float(jnp.max(jnp.abs(flat[('encoder', 'layer_0', 'self_attention', 'query',
                                     'kernel')]))) > 0


def test_unknown_distillation_loss_is_an_error():
  with pytest.raises(ValueError, match='distill.losses names'):
    distill.make(base.Objective(None, None, ('mlm',)), None, 1, losses=('kl', 'logits'))


@pytest.mark.model
def test_pruned_model_equals_the_unpruned_model_with_those_heads_masked(data):
  tok, batch = data
  full = models.build(encoder_config(), tok.vocab_size)
  params = init(full, batch)
  keep_h, keep_f = [np.array([0, 2]), np.array([3])], [np.arange(0, 256, 3), np.arange(40)]
  pruned = models.build(encoder_config(layer_heads=(2, 1), layer_ff=(86, 40)), tok.vocab_size)
  small = prune.prune_params(params, keep_h, keep_f)
  shapes = lambda t: jax.tree_util.tree_map(jnp.shape, t)
  assert shapes(small) == shapes(init(pruned, batch))
  args = (batch['tokens'], batch['positions'], masks.packed_mask(batch['segment_ids']))
  got = jax.jit(lambda p: pruned.apply({'params': p}, *args))(small)
  apply_full = jax.jit(lambda p: full.apply({'params': p}, *args))
  want = apply_full(prune.mask_params(params, keep_h, keep_f))
  unmasked = apply_full(params)
  np.testing.assert_allclose(got, want, atol=2e-5)
  assert float(jnp.max(jnp.abs(unmasked - want))) > 1e-2  # the masked heads mattered


def test_choose_ranks_across_layers_and_keeps_one_per_layer():
  scores = [np.array([5.0, 1.0, 3.0]), np.array([0.5, 0.2, 4.0])]
  assert [k.tolist() for k in prune.choose(scores, 0.5, 'prune_heads')] == [[0, 2], [2]]
  assert [k.tolist() for k in prune.choose(scores, 0.99, 'prune_heads')] == [[0], [2]]
  assert [k.tolist() for k in prune.choose(scores, 0.0, 'prune_heads')] == [[0, 1, 2]] * 2
  for bad in (1.0, -0.1, 1.5):
    with pytest.raises(ValueError, match=r'compress.prune_ff=.* must be in \[0, 1\)'):
      prune.choose(scores, bad, 'prune_ff')


@pytest.mark.model
def test_taylor_scores_are_the_gate_gradients(data):
  """<W_out[h], dL/dW_out[h]> is dL/d(gate of head h) at gate 1 (checked by scaling)."""
  tok, batch = data
  model = models.build(encoder_config(), tok.vocab_size)
  params = init(model, batch)
  args = (batch['tokens'], batch['positions'], masks.packed_mask(batch['segment_ids']))
  loss = lambda p: jnp.sum(model.apply({'params': p}, *args)[..., :5] ** 2)
  heads, _ = prune.taylor_scores(params, jax.jit(jax.grad(loss))(params))

  def gated(g):  # scale head 1 of layer 0 by g
    out = params['encoder']['layer_0']['self_attention']['out']['kernel']
    p = flax.traverse_util.flatten_dict(params)
    p[('encoder', 'layer_0', 'self_attention', 'out', 'kernel')] = out.at[1].multiply(g)
    return loss(flax.traverse_util.unflatten_dict(p))

  np.testing.assert_allclose(heads[0][1], abs(float(jax.jit(jax.grad(gated))(1.0))), rtol=1e-3)


@pytest.mark.model
def test_quantized_tree_is_the_int8_models_and_shrinks(data):
  tok, batch = data
  params = init(models.build(encoder_config(), tok.vocab_size), batch)
  q = quantize.quantize_params(params)
  want = jax.eval_shape(lambda: init(models.build(encoder_config(quant='int8'), tok.vocab_size),
                                     batch))
  spec = lambda t: jax.tree_util.tree_map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype)), t)
  assert spec(q) == spec(want)
  k = params['encoder']['layer_0']['mlp']['wi']['kernel']
  qk = q['encoder']['layer_0']['mlp']['wi']
  np.testing.assert_allclose(qk['kernel'] * qk['scale'], k, atol=float(qk['scale'].max()) / 2 + 1e-7)
  assert quantize.nbytes(q) < quantize.nbytes(params)


def test_int8_matmul_is_an_int32_product_of_the_quantized_operands():
  rng = np.random.RandomState(0)
  x, w = rng.normal(size=(5, 16)).astype(np.float32), rng.normal(size=(16, 7)).astype(np.float32)
  qw, s = quantize.quantize_kernel(w, 1)
  xs = np.abs(x).max(1, keepdims=True) / 127
  ref = (np.round(x / xs).astype(np.int64) @ qw.astype(np.int64)) * xs * s
  np.testing.assert_allclose(int8_matmul(jnp.asarray(x), jnp.asarray(qw), jnp.asarray(s)), ref,
                             rtol=1e-5, atol=1e-5)
  text = jax.jit(int8_matmul).lower(jnp.asarray(x), jnp.asarray(qw), jnp.asarray(s)).as_text()
  assert 'i8' in text and 'i32' in text


def test_quant_dense_is_the_float_layer_within_int8_error_on_a_heads_kernel():
  """QuantDense with quantize_kernel's params computes what HeadsDense computes with the
  float kernel, on attention's 3-D 'out' kernel (two contracted dims) and a 2-D one."""
  rng = np.random.RandomState(0)
  for features, axes, x_shape in (((8,), ('heads', 'kv', 'embed'), (2, 5, 3, 4)),
                                  ((3, 4), ('embed', 'heads', 'kv'), (2, 5, 8))):
    x = jnp.asarray(rng.randn(*x_shape).astype(np.float32))
    float_layer = HeadsDense(features, axes)
    params = nn.unbox(float_layer.init(jax.random.PRNGKey(0), x))['params']
    params['bias'] = jnp.asarray(rng.randn(*features).astype(np.float32))
    want = float_layer.apply({'params': params}, x)
    n_in = len(axes) - len(features)
    kernel, scale = quantize.quantize_kernel(params['kernel'], n_in)
    got = quant.QuantDense(features, axes).apply(
        {'params': dict(kernel=kernel, scale=scale, bias=params['bias'])}, x)
    assert got.shape == want.shape == x_shape[:x.ndim - n_in] + features
    err = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert 1e-6 < err < 0.02  # quantized (not the float path), and close to it


def test_compression_fields_are_declared_once_with_their_defaults():
  mc = models.config('encoder_lm')
  assert {k: mc[k] for k in compress_config.DEFAULTS} == compress_config.DEFAULTS
  assert models.DEFAULT_WHEN_ABSENT.items() >= compress_config.DEFAULTS.items()
  enc = encoder_lib.build_encoder(encoder_config(layer_heads=[2, 1], layer_ff=[86, 40]), 100)
  assert (enc.layer_heads, enc.layer_ff, enc.quant) == ((2, 1), (86, 40), '')  # JSON lists
  assert quant.dense_class('') is None and quant.dense_class('int8') is quant.QuantDense
  with pytest.raises(ValueError, match=r'need one entry per layer \(2\)'):
    compress_config.layer_shapes(2, 4, 16, (4,), ())


def test_unknown_quantization_mode_is_an_error():
  with pytest.raises(ValueError, match="compress.quantize='int4' is unknown"):
    quantize.check_backend('int4')
  with pytest.raises(ValueError, match="model.quant='fp8' is unknown"):
    jax.eval_shape(models.build(encoder_config(quant='fp8'), 100).init, jax.random.PRNGKey(0),
                   jnp.ones((1, 4), jnp.int32), jnp.zeros((1, 4), jnp.int32), None)
