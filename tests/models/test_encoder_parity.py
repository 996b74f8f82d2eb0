"""Parity of plm's Encoder / EncoderLM with transformers' Flax BERT.

transformers is the reference implementation: a random-init HF model, converted
with plm.convert.hf_bert, must give the same hidden states and MLM logits.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks
from plm.convert.hf_bert import from_hf_flax_bert, hf_config_kwargs
from plm.models.encoder import Encoder, EncoderLM

pytestmark = pytest.mark.model

transformers = pytest.importorskip('transformers')

TOL = 1e-4  # max abs diff at valid positions, fp32
DIFFERS = 1e-3  # a negative control must move outputs by more than this
LENGTHS = (16, 11, 5)  # real tokens per row; the rest is padding
L = 16


def _config():
  return transformers.BertConfig(
      vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=128, hidden_act='gelu', max_position_embeddings=64, type_vocab_size=2)


def _random_params(model, seed):
  """Random HF params without running HF's init (eager init compiles op by op).

  Also, HF inits biases to 0 and LayerNorm scales to 1, which would hide a
  mis-mapped bias or LayerNorm: every tensor here is random.
  """
  rng = np.random.RandomState(seed)
  shapes = jax.eval_shape(functools.partial(model.init_weights, input_shape=(1, L)),
                          jax.random.PRNGKey(0))
  def draw(path, x):
    noise = 0.1 * rng.standard_normal(x.shape).astype(x.dtype)
    return noise + 1 if jax.tree_util.keystr(path).endswith("'scale']") else noise
  return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.fixture(scope='module')
def batch():
  rng = np.random.RandomState(0)
  valid = np.arange(L)[None, :] < np.array(LENGTHS)[:, None]
  tokens = np.where(valid, rng.randint(1, 99, (len(LENGTHS), L)), 0).astype(np.int32)
  # Sentence B starts mid-row, as in BERT's next-sentence pairs.
  types = (valid & (np.arange(L)[None, :] >= np.array(LENGTHS)[:, None] // 2)).astype(np.int32)
  positions = np.broadcast_to(np.arange(L, dtype=np.int32), tokens.shape)
  return dict(tokens=tokens, valid=valid, types=types, positions=positions,
              mask=masks.padding_mask(valid))


def _hf(cls, seed, b):
  """(randomized HF params, HF output on `b`): the reference, computed once."""
  model = cls(_config(), _do_init=False)
  params = _random_params(model, seed)
  run = jax.jit(lambda p, *args: model(*args, params=p, train=False)[0])
  with jax.default_matmul_precision('highest'):
    out = run(params, b['tokens'], b['valid'].astype(np.int32), b['types'])
  return params, np.asarray(out)  # last_hidden_state or logits


@pytest.fixture(scope='module')
def hf_model(batch):
  return _hf(transformers.FlaxBertModel, 1, batch)


@pytest.fixture(scope='module')
def hf_mlm(batch):
  return _hf(transformers.FlaxBertForMaskedLM, 2, batch)


def _plm_encoder():
  return Encoder(**hf_config_kwargs(_config()))


def _run_plm(module, params, b, **kwargs):
  kwargs.setdefault('token_types', b['types'])
  mask = kwargs.pop('mask', b['mask'])
  with jax.default_matmul_precision('highest'):
    return np.asarray(module.apply({'params': params}, b['tokens'], b['positions'], mask,
                                   **kwargs))


def _max_diff(a, b, valid):
  return float(np.abs(a - b)[valid].max())  # padded query rows differ by design


@pytest.mark.parametrize('with_mlm_head', [False, True])
def test_tree_matches_init(hf_model, hf_mlm, batch, with_mlm_head):
  hf_params, _ = hf_mlm if with_mlm_head else hf_model
  module = EncoderLM(_plm_encoder()) if with_mlm_head else _plm_encoder()
  init = lambda: nn.unbox(module.init(jax.random.PRNGKey(0), batch['tokens'],
                                      batch['positions'], batch['mask']))['params']
  want = jax.tree.map(lambda x: (x.shape, x.dtype), jax.eval_shape(init))
  got = jax.tree.map(lambda x: (x.shape, x.dtype),
                     from_hf_flax_bert(hf_params, heads=4, with_mlm_head=with_mlm_head))
  assert got == want


def test_encoder_matches_hf(hf_model, batch):
  hf_params, want = hf_model
  got = _run_plm(_plm_encoder(), from_hf_flax_bert(hf_params, heads=4, with_mlm_head=False),
                 batch)
  diff = _max_diff(got, want, batch['valid'])
  print(f'encoder hidden max abs diff: {diff:.2e}')
  assert diff < TOL


def test_mlm_matches_hf(hf_mlm, batch):
  hf_params, want = hf_mlm
  params = from_hf_flax_bert(hf_params, heads=4, with_mlm_head=True)
  lm = EncoderLM(_plm_encoder())
  got = _run_plm(lm, params, batch)
  diff = _max_diff(got, want, batch['valid'])
  print(f'MLM logits max abs diff: {diff:.2e}')
  assert diff < TOL

  # Gathered positions (BERT's max_predictions_per_seq), repeats allowed.
  where = np.array([[0, 7, 15], [1, 10, 3], [4, 0, 4]], np.int32)
  got = _run_plm(lm, params, batch, predict_positions=where)
  diff = float(np.abs(got - np.take_along_axis(want, where[..., None], axis=1)).max())
  print(f'MLM gathered logits max abs diff: {diff:.2e}')
  assert diff < TOL


def test_encoder_only_from_mlm_params(hf_mlm):
  hf_params, _ = hf_mlm
  full = from_hf_flax_bert(hf_params, heads=4, with_mlm_head=True)
  alone = from_hf_flax_bert(hf_params, heads=4, with_mlm_head=False)
  assert jax.tree.all(jax.tree.map(np.array_equal, alone, full['encoder']))


def _swap_query_heads(params):
  q = params['layer_0']['self_attention']['query']
  q['kernel'] = q['kernel'][:, [1, 0, 2, 3]]
  q['bias'] = q['bias'][[1, 0, 2, 3]]


def _perturb_one_weight(params):
  k = params['layer_1']['mlp']['wo']['kernel'].copy()
  k[3, 5] += 0.5
  params['layer_1']['mlp']['wo']['kernel'] = k


@pytest.mark.parametrize('control', ['swap_query_heads', 'perturb_one_weight',
                                     'no_token_types', 'no_padding_mask'])
def test_negative_controls_differ(hf_model, batch, control):
  """Each deliberate mistake must fail the parity check, so it can fail."""
  hf_params, want = hf_model
  params = from_hf_flax_bert(hf_params, heads=4, with_mlm_head=False)
  kwargs = {}
  if control == 'swap_query_heads':
    _swap_query_heads(params)
  elif control == 'perturb_one_weight':
    _perturb_one_weight(params)
  elif control == 'no_token_types':
    kwargs['token_types'] = None
  else:
    kwargs['mask'] = jnp.ones((len(LENGTHS), 1, L, L), bool)
  diff = _max_diff(_run_plm(_plm_encoder(), params, batch, **kwargs), want, batch['valid'])
  print(f'{control}: max abs diff {diff:.2e}')
  assert diff > DIFFERS


def _edit(params, path, fn):
  params = jax.tree.map(np.asarray, params)  # a mutable copy
  node = params
  for key in path[:-1]:
    node = node[key]
  node[path[-1]] = fn(node[path[-1]])
  return params


def test_bad_shape_names_parameter(hf_mlm):
  hf_params, _ = hf_mlm
  bad = _edit(hf_params, ('bert', 'encoder', 'layer', '1', 'attention', 'self', 'query',
                          'kernel'), lambda k: k[:, :60])
  with pytest.raises(ValueError, match=r"bert/encoder/layer/1/attention/self/query/kernel"
                     r".*\(64, 60\).*\(64, 64\)"):
    from_hf_flax_bert(bad, heads=4, with_mlm_head=True)
  bad = _edit(hf_params, ('cls', 'predictions', 'bias'), lambda b: b[:-1])
  with pytest.raises(ValueError, match='cls/predictions/bias'):
    from_hf_flax_bert(bad, heads=4, with_mlm_head=True)


def test_other_errors(hf_model, hf_mlm):
  hf_params, _ = hf_model
  with pytest.raises(ValueError, match='heads=5 does not divide hidden size 64'):
    from_hf_flax_bert(hf_params, heads=5, with_mlm_head=False)
  with pytest.raises(ValueError, match='needs FlaxBertForMaskedLM'):
    from_hf_flax_bert(hf_params, heads=4, with_mlm_head=True)
  untied = _edit(hf_mlm[0], ('cls', 'predictions'),
                 lambda p: {**p, 'decoder': {'kernel': np.zeros((64, 99), np.float32)}})
  with pytest.raises(ValueError, match='cannot represent.*cls/predictions/decoder/kernel'):
    from_hf_flax_bert(untied, heads=4, with_mlm_head=True)


def test_hf_config_kwargs():
  kwargs = hf_config_kwargs(_config())
  assert kwargs == dict(vocab_size=99, layers=2, hidden=64, heads=4, ff=128, activation='gelu',
                        dropout=0.1, attention_dropout=0.1, max_len=64, num_segments=2,
                        positions='learned', post_ln=True, ln_eps=1e-12)
  assert hf_config_kwargs(_config().to_dict()) == kwargs
  Encoder(**kwargs)  # every key is an Encoder field
  with pytest.raises(ValueError, match='hidden_act'):
    hf_config_kwargs({**_config().to_dict(), 'hidden_act': 'silu'})
  with pytest.raises(ValueError, match='position_embedding_type'):
    hf_config_kwargs({**_config().to_dict(), 'position_embedding_type': 'relative_key'})
