"""How the encoder computes: fused attention, remat policies, bfloat16.

None of these may change what the model is: the same parameters give the same
outputs (attention, remat: to float32 rounding; bf16: to bf16 rounding) and
the same gradients.
"""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import jaxprs_in_params

from plm import configlib, masks, models
from plm import meta as meta_lib
from plm.models.encoder import REMAT_POLICIES, Encoder, EncoderLM

pytestmark = pytest.mark.model

V, L, B = 53, 12, 3


def _model(**kw):
  kw = dict(dict(vocab_size=V, layers=2, hidden=32, heads=4, ff=64, dropout=0.0,
                 attention_dropout=0.0, max_len=L, num_segments=2), **kw)
  return EncoderLM(Encoder(**kw))


def _inputs(seed=0):
  rng = np.random.RandomState(seed)
  tokens = jnp.asarray(rng.randint(5, V, (B, L)), jnp.int32)
  positions = jnp.broadcast_to(jnp.arange(L), (B, L))
  valid = jnp.asarray(np.arange(L)[None] < np.array([L, 7, 4])[:, None])
  token_types = jnp.asarray(np.arange(L)[None] >= np.array([6, 3, 2])[:, None], jnp.int32)
  return tokens, positions, valid, token_types


# Masks with padding (rows 1 and 2 have padded queries that may attend to nothing).
MASKS = {
    'padding': lambda valid, tt: masks.padding_mask(valid),
    'causal': lambda valid, tt: masks.causal_mask(valid),
    'seq2seq': lambda valid, tt: masks.seq2seq_mask(tt, valid),
}


def _equations(jaxpr):
  """Every equation of a jaxpr, those of its sub-jaxprs (pjit, custom_vjp) included."""
  for e in jaxpr.eqns:
    yield e
    for sub in jaxprs_in_params(e.params):
      yield from _equations(sub)


@pytest.fixture(scope='module')
def params():
  tokens, positions, valid, _ = _inputs()
  return nn.unbox(_model().init(jax.random.PRNGKey(0), tokens, positions,
                                masks.padding_mask(valid))['params'])


@pytest.mark.parametrize('mask_name', sorted(MASKS))
def test_dot_product_attention_matches_einsum(params, mask_name):
  tokens, positions, valid, tt = _inputs()
  mask = MASKS[mask_name](valid, tt)
  assert not np.all(np.any(mask, -1))  # some query rows attend to nothing: covered too

  def loss(p, attention):
    logits = _model(attention=attention).apply({'params': p}, tokens, positions, mask,
                                               token_types=tt)
    return jnp.sum(jnp.where(valid[..., None], logits, 0) ** 2), logits

  (_, want), g_want = jax.value_and_grad(loss, has_aux=True)(params, 'einsum')
  (_, got), g_got = jax.value_and_grad(loss, has_aux=True)(params, 'xla')
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(g_got), jax.tree_util.tree_leaves(g_want)):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)


def test_fused_attention_refuses_attention_dropout_in_training(params):
  tokens, positions, valid, _ = _inputs()
  model = _model(attention='xla', attention_dropout=0.1)
  mask = masks.padding_mask(valid)
  # Evaluation has no dropout: fine.
  model.apply({'params': params}, tokens, positions, mask, deterministic=True)
  with pytest.raises(ValueError, match='set model.attention_dropout=0'):
    model.apply({'params': params}, tokens, positions, mask, deterministic=False,
                rngs={'dropout': jax.random.PRNGKey(0)})


def test_remat_policies_give_the_same_gradients():
  tokens, positions, valid, _ = _inputs()
  mask = masks.padding_mask(valid)
  key = jax.random.key(3, impl='rbg')  # compiles faster than threefry on CPU; same replay
  # One block (remat wraps each block alike) keeps the five compiles short.
  params = nn.unbox(_model(layers=1).init(jax.random.PRNGKey(0), tokens, positions,
                                          mask)['params'])

  def grad_fn(remat):
    model = _model(layers=1, remat=remat, dropout=0.1, attention_dropout=0.1)  # dropout replayed
    def loss(p):
      logits = model.apply({'params': p}, tokens, positions, mask, deterministic=False,
                           rngs={'dropout': key})
      return jnp.mean(jax.nn.log_softmax(logits)[..., 7])
    return jax.grad(loss)

  want = jax.jit(grad_fn('none'))(params)
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(want)) > 1e-3
  for policy in REMAT_POLICIES:
    if policy == 'none':
      continue
    fn = grad_fn(policy)
    jaxpr = str(jax.make_jaxpr(fn)(params))
    assert re.search(r'\b(remat\d*|checkpoint)\[', jaxpr), policy  # remat really applied
    got = jax.jit(fn)(params)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
      np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5, err_msg=policy)


def test_bfloat16_contracts_in_bf16_with_fp32_params_states_and_logits(params):
  tokens, positions, valid, _ = _inputs()
  mask = masks.padding_mask(valid)
  model = _model(dtype=jnp.bfloat16)
  fresh = nn.unbox(model.init(jax.random.PRNGKey(0), tokens, positions, mask)['params'])
  assert {x.dtype for x in jax.tree_util.tree_leaves(fresh)} == {jnp.dtype(jnp.float32)}
  logits, inter = model.apply({'params': params}, tokens, positions, mask,
                              capture_intermediates=True, mutable=['intermediates'])
  assert logits.dtype == jnp.float32
  # Hidden states (residuals, LayerNorm) stay float32 (plm/nn/precision.py) ...
  hidden = inter['intermediates']['encoder']['__call__'][0]
  assert hidden.dtype == jnp.float32
  # ... and every matmul, forward and backward, takes bf16 operands and returns float32.
  grad = jax.grad(lambda p: jnp.sum(model.apply({'params': p}, tokens, positions, mask)))
  jaxpr = jax.make_jaxpr(grad)(params).jaxpr
  dots = [e for e in _equations(jaxpr) if e.primitive.name == 'dot_general']
  assert len(dots) >= 3 * (2 * 6 + 1)  # 2 layers x (4 projections, 2 attention, 2 mlp) + head
  for e in dots:
    assert [v.aval.dtype for v in e.invars] == [jnp.bfloat16] * 2, e
    assert e.outvars[0].aval.dtype == jnp.float32, e
  want = _model().apply({'params': params}, tokens, positions, mask)
  # bf16 has an 8-bit mantissa: logits agree to a few bf16 ulps of their scale.
  scale = float(jnp.max(jnp.abs(want)))
  assert float(jnp.max(jnp.abs(logits - want))) < 0.05 * scale
  assert float(jnp.max(jnp.abs(logits - want))) > 0  # it really did compute in bf16


def test_unknown_compute_options_name_the_choices():
  for key, value, expected in (('dtype', 'float16', 'bfloat16'), ('attention', 'flash', 'cudnn'),
                               ('remat', 'some', 'dots_saveable')):
    config = configlib.shrink_for_cpu(configlib.base())
    config.model[key] = value
    with pytest.raises(ValueError, match=f'model.{key}=.*{expected}'):
      model = models.build(config.model, V)
      tokens, positions, valid, _ = _inputs()
      model.init(jax.random.PRNGKey(0), tokens, positions, masks.padding_mask(valid))


def test_checkpoint_serves_every_compute_setting():
  """A run trained in bf16 with remat can be evaluated in fp32 without it; another
  shape is still refused."""
  config = configlib.shrink_for_cpu(configlib.base())
  saved = dict(vocab='v', model=config.model.to_dict())
  current = config.model.to_dict()
  current.update(dtype='bfloat16', remat='full', attention='xla')
  meta_lib.check_meta(saved, dict(vocab='v', model=current))
  current['layers'] = 3
  with pytest.raises(ValueError, match='another model'):
    meta_lib.check_meta(saved, dict(vocab='v', model=current))
