"""Encoder(all_layers=True): every layer's hidden states, same params and output.

Checked against transformers' FlaxBertModel(output_hidden_states=True) on the
same random weights, and against a shorter Encoder holding the first k blocks.
"""
import functools

import flax.linen as nn
import jax
import numpy as np
import pytest

from plm import masks
from plm.convert.hf_bert import from_hf_flax_bert, hf_config_kwargs
from plm.models.encoder import Encoder

pytestmark = pytest.mark.model

transformers = pytest.importorskip('transformers')
L, LENGTHS = 12, (12, 7, 3)


@pytest.fixture(scope='module')
def batch():
  rng = np.random.RandomState(0)
  valid = np.arange(L)[None, :] < np.array(LENGTHS)[:, None]
  tokens = np.where(valid, rng.randint(1, 99, (len(LENGTHS), L)), 0).astype(np.int32)
  positions = np.broadcast_to(np.arange(L, dtype=np.int32), tokens.shape)
  return tokens, positions, masks.padding_mask(valid), valid


def _run(module, params, batch, **kw):
  tokens, positions, mask, _ = batch
  with jax.default_matmul_precision('highest'):
    return jax.tree.map(np.asarray, module.apply({'params': params}, tokens, positions, mask,
                                                 **kw))


def _init(module, batch):
  tokens, positions, mask, _ = batch
  return nn.unbox(module.init(jax.random.PRNGKey(1), tokens, positions, mask))['params']


@pytest.mark.parametrize('post_ln', [True, False])
def test_last_layer_is_the_usual_output_and_params_unchanged(batch, post_ln):
  enc = Encoder(vocab_size=99, layers=3, hidden=32, heads=4, ff=64, max_len=L, post_ln=post_ln)
  params = _init(enc, batch)
  tokens, positions, mask, _ = batch
  with_states = nn.unbox(enc.init(jax.random.PRNGKey(1), tokens, positions, mask,
                                  all_layers=True))['params']
  assert jax.tree.all(jax.tree.map(np.array_equal, params, with_states))
  states = _run(enc, params, batch, all_layers=True)
  assert len(states) == 4
  np.testing.assert_array_equal(states[-1], _run(enc, params, batch))
  # Block k's output is what an encoder of the first k blocks computes (post-LN:
  # a pre-LN encoder adds its final LayerNorm, which only the last state gets).
  for k in (1, 2):
    short = Encoder(vocab_size=99, layers=k, hidden=32, heads=4, ff=64, max_len=L,
                    post_ln=post_ln)
    sub = {n: p for n, p in params.items() if not n.startswith('layer_') or int(n[6:]) < k}
    if post_ln:
      np.testing.assert_allclose(states[k], _run(short, sub, batch), atol=1e-6)
    else:
      np.testing.assert_allclose(_run(short, sub, batch),
                                 _run(short, sub, batch, all_layers=True)[-1])
      ln = nn.LayerNorm(epsilon=1e-12)
      np.testing.assert_allclose(
          np.asarray(ln.apply({'params': params['final_ln']}, states[k])),
          _run(short, sub, batch), atol=1e-5)
    assert np.abs(states[k] - states[k + 1]).max() > 1e-3  # the layers differ


def test_hidden_states_match_transformers(batch):
  config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=3,
                                   num_attention_heads=4, intermediate_size=64,
                                   max_position_embeddings=L, type_vocab_size=2)
  hf = transformers.FlaxBertModel(config, _do_init=False)
  rng = np.random.RandomState(3)
  shapes = jax.eval_shape(functools.partial(hf.init_weights, input_shape=(1, L)),
                          jax.random.PRNGKey(0))
  def draw(path, x):  # every tensor random (a 0 bias or unit scale would hide a mix-up)
    noise = 0.1 * rng.standard_normal(x.shape).astype(x.dtype)
    return noise + 1 if jax.tree_util.keystr(path).endswith("'scale']") else noise
  hf_params = jax.tree_util.tree_map_with_path(draw, shapes)
  tokens, _, _, valid = batch
  with jax.default_matmul_precision('highest'):
    want = hf(tokens, valid.astype(np.int32), np.zeros_like(tokens), params=hf_params,
              output_hidden_states=True).hidden_states
  enc = Encoder(**hf_config_kwargs(config))
  got = _run(enc, from_hf_flax_bert(hf_params, heads=4, with_mlm_head=False), batch,
             token_types=np.zeros_like(tokens), all_layers=True)
  assert len(got) == len(want) == 4
  for k, (g, w) in enumerate(zip(got, want)):
    diff = float(np.abs(g - np.asarray(w))[valid].max())
    assert diff < 1e-4, f'layer {k}: max abs diff {diff:.2e}'
