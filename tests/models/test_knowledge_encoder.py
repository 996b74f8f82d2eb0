"""ERNIE's knowledge encoder: the fusion layer against numpy, the token-only path against a
BERT layer on the same weights, and the entity table (frozen vs trained)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from plm import masks, models
from plm.models import knowledge_encoder as ke
from plm.nn.transformer import TransformerBlock


def gelu(x):
  return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def ln(x, p, eps=1e-12):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * np.asarray(p['scale']) + np.asarray(p['bias'])


def affine(x, p):
  return x @ np.asarray(p['kernel']) + (np.asarray(p['bias']) if 'bias' in p else 0)


@pytest.mark.model
def test_fusion_matches_numpy_on_hand_made_inputs():
  # Two rows of three tokens, hidden 4; token (0, 1) and (1, 0) carry an entity.
  w = np.array([[[1., -2., 0.5, 3.], [0., 1., -1., 2.], [2., 2., -3., 0.]],
                [[-1., 0., 1., 0.], [0.5, 0.5, 0.5, -0.5], [3., -1., 0., 1.]]], np.float32)
  e = np.array([[[9., 9., 9., 9.], [1., 0., -2., 1.], [7., -7., 7., -7.]],
                [[0., 2., 1., -1.], [5., 5., -5., 5.], [-4., 4., 4., 4.]]], np.float32)
  has = np.array([[0, 1, 0], [1, 0, 0]], bool)
  fusion = ke.Fusion(ff=6, dropout=0.0)
  params = nn.unbox(fusion.init(jax.random.PRNGKey(0), w, e, has))['params']
  # Non-zero biases, so the token-only path's b is exercised too.
  params = jax.tree_util.tree_map(
      lambda x: x + 0.1 * jax.random.normal(jax.random.PRNGKey(1), x.shape), params)
  got_w, got_e = fusion.apply({'params': params}, w, e, has)
  h = gelu(affine(w, params['token_in']) + has[..., None] * affine(e, params['entity_in']))
  want_w = ln(w + affine(h, params['token_out']), params['token_ln'])
  want_e = ln(e + affine(h, params['entity_out']), params['entity_ln']) * has[..., None]
  np.testing.assert_allclose(got_w, want_w, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_e, want_e, rtol=1e-5, atol=1e-5)
  # Tokens without an entity: h = gelu(W_t w + b), whatever their entity input holds.
  h0 = gelu(affine(w, params['token_in']))
  np.testing.assert_allclose(np.asarray(got_w)[~has], ln(w + affine(h0, params['token_out']),
                                                          params['token_ln'])[~has], atol=1e-5)
  assert not np.asarray(got_e)[~has].any()


@pytest.mark.model
def test_aggregator_without_entities_is_a_bert_layer_on_the_same_weights():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(2, 5, 8)).astype(np.float32)
  e = rng.normal(size=(2, 5, 8)).astype(np.float32)  # garbage: no token has an entity
  valid = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], bool)
  mask = masks.padding_mask(valid)
  none = np.zeros((2, 5), bool)
  agg = ke.Aggregator(heads=2, head_dim=4, ff=16, dropout=0.0, attention_dropout=0.0)
  p = nn.unbox(agg.init(jax.random.PRNGKey(0), w, e, mask, masks.padding_mask(none), none))
  p = p['params']
  got, got_e = agg.apply({'params': p}, w, e, mask, masks.padding_mask(none), none)
  block = TransformerBlock(2, 4, 16, dropout_rate=0.0, attention_dropout_rate=0.0)
  f = p['fusion']
  bert = {'self_attention': p['self_attention'], 'self_attention_ln': p['self_attention_ln'],
          'mlp': {'wi': f['token_in'], 'wo': f['token_out']}, 'mlp_ln': f['token_ln']}
  want = block.apply({'params': bert}, w, mask)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert not np.asarray(got_e).any()


def small_config(table='frozen'):
  mc = models.config('ernie')
  mc.update(size='test', max_len=16, dropout=0.0, attention_dropout=0.0, num_entities=6,
            entity_dim=3, entity_table=table)
  return mc


def inputs(entities):
  tokens = jnp.array([[2, 7, 8, 9, 3, 0], [2, 10, 11, 3, 0, 0]])
  valid = tokens > 0
  return dict(tokens=tokens, positions=jnp.broadcast_to(jnp.arange(6), tokens.shape),
              mask=masks.padding_mask(valid), entities=jnp.asarray(entities))


@pytest.mark.model
@pytest.mark.parametrize('table', ke.ENTITY_TABLES)
def test_entities_reach_only_through_aligned_tokens(table):
  model = models.build(small_config(table), vocab_size=20)
  vectors = jax.random.normal(jax.random.PRNGKey(3), (7, 3))
  linked = inputs([[0, 2, 0, 5, 0, 0], [0, 0, 1, 0, 0, 0]])
  params = model.init(jax.random.PRNGKey(0), **linked, entity_table=vectors,
                      candidates=jnp.array([1, 2, 5]))['params']
  assert ('entities' in params['backbone']) == (table == 'trained')
  run = lambda x, t: model.apply({'params': params}, **x, entity_table=t)['mlm']
  other = vectors.at[1:].set(-vectors[1:] * 3)
  unlinked = inputs(np.zeros((2, 6), int))
  # No aligned entity: the entity vectors do not matter.
  np.testing.assert_allclose(run(unlinked, vectors), run(unlinked, other), atol=1e-6)
  # Aligned: a frozen table is read from the input, a trained one from the params.
  moved = np.abs(np.asarray(run(linked, vectors) - run(linked, other))).max()
  assert (moved > 1e-3) == (table == 'frozen')
  assert np.abs(np.asarray(run(linked, vectors) - run(unlinked, vectors))).max() > 1e-3
  dea = model.apply({'params': params}, **linked, entity_table=vectors,
                    candidates=jnp.array([1, 2, 5]))['dea']
  assert dea.shape == (2, 6, 3)


def test_bad_config_is_one_clear_error():
  mc = small_config()
  mc.entity_table = 'learned'
  with pytest.raises(ValueError, match='entity_table'):
    models.build(mc, 20)
  mc = small_config()
  mc.num_entities = -1
  with pytest.raises(ValueError, match='num_entities'):
    models.build(mc, 20)
