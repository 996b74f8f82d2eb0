"""Encoder(all_layers=True): every layer's hidden states, same params and output.

Checked against transformers' PyTorch BertModel(output_hidden_states=True) on the
same random weights, and against a shorter Encoder holding the first k blocks.
"""
import flax.linen as nn
import jax
import numpy as np
import pytest

from plm import masks
from plm.convert import hf as hf_convert
from plm.models.encoder import Encoder

pytestmark = pytest.mark.model

transformers = pytest.importorskip('transformers')
torch = pytest.importorskip('torch')
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
  hf = transformers.BertModel(config).eval()
  g = torch.Generator().manual_seed(3)
  with torch.no_grad():  # every tensor random (a 0 bias or unit scale would hide a mix-up)
    for name, p in hf.named_parameters():
      p.copy_(0.1 * torch.randn(p.shape, generator=g) + (name.endswith('LayerNorm.weight')))
  tokens, _, _, valid = batch
  with torch.no_grad():
    want = hf(torch.tensor(tokens, dtype=torch.long), torch.tensor(valid, dtype=torch.long),
              output_hidden_states=True).hidden_states
  tensors = {k: v.numpy() for k, v in hf.state_dict().items()}
  cfg = config.to_dict()
  enc = Encoder(**hf_convert.encoder_kwargs(cfg))
  got = _run(enc, hf_convert.to_plm(tensors, cfg, with_mlm_head=False), batch,
             token_types=np.zeros_like(tokens), all_layers=True)
  assert len(got) == len(want) == 4
  for k, (g, w) in enumerate(zip(got, want)):
    diff = float(np.abs(g - np.asarray(w))[valid].max())
    assert diff < 1e-4, f'layer {k}: max abs diff {diff:.2e}'
