"""Parity of plm's Encoder / EncoderLM with transformers' PyTorch models.

transformers is the reference implementation: a randomly initialised HF model,
saved with save_pretrained (safetensors) and read by plm.convert.hf, must give
the same hidden states and MLM logits, for each layout plm reads (BERT, ERNIE
with task embeddings, XLM-R); plm params exported back must load in
transformers with the same outputs.
"""
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks
from plm.convert import hf
from plm.models.encoder import Encoder, EncoderLM

pytestmark = pytest.mark.model

transformers = pytest.importorskip('transformers')
torch = pytest.importorskip('torch')

TOL = 1e-4  # max abs diff at valid positions, fp32
DIFFERS = 1e-3  # a negative control must move outputs by more than this
LENGTHS = (16, 11, 5)  # real tokens per row; the rest is padding
L, V = 16, 99
SHAPE = dict(vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=128, hidden_act='gelu', max_position_embeddings=64)
LAYOUTS = {  # name -> (config class, base model, masked-LM model, extra config)
    'bert': ('BertConfig', 'BertModel', 'BertForMaskedLM', dict(type_vocab_size=2)),
    'ernie': ('ErnieConfig', 'ErnieModel', 'ErnieForMaskedLM',
              dict(type_vocab_size=2, use_task_id=True, task_type_vocab_size=3)),
    'xlm-roberta': ('XLMRobertaConfig', 'XLMRobertaModel', 'XLMRobertaForMaskedLM',
                    dict(type_vocab_size=1, pad_token_id=1, max_position_embeddings=66)),
}


def _randomize(model, seed):
  """Every tensor random: HF's zero biases and unit LayerNorm scales would hide a mis-mapping."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      p.copy_(0.1 * torch.randn(p.shape, generator=g) + (1.0 if 'LayerNorm.weight' in name
                                                           or 'layer_norm.weight' in name else 0))
  return model.eval()


def _save(layout, mlm, seed, directory):
  """A random HF model of `layout` saved to `directory`; returns the model."""
  cfg_cls, base, lm, extra = LAYOUTS[layout]
  config = getattr(transformers, cfg_cls)(**{**SHAPE, **extra})
  model = _randomize(getattr(transformers, lm if mlm else base)(config), seed)
  model.save_pretrained(directory)  # safetensors by default
  return model


@pytest.fixture(scope='module')
def batch():
  rng = np.random.RandomState(0)
  valid = np.arange(L)[None, :] < np.array(LENGTHS)[:, None]
  # Ids from 2: XLM-R's pad id is 1 and its positions skip pad tokens.
  tokens = np.where(valid, rng.randint(2, V, (len(LENGTHS), L)), 1).astype(np.int32)
  # Sentence B starts mid-row, as in BERT's next-sentence pairs.
  types = (valid & (np.arange(L)[None, :] >= np.array(LENGTHS)[:, None] // 2)).astype(np.int32)
  tasks = np.where(valid, 2, 0).astype(np.int32)  # ERNIE 2.0: a task other than 0
  positions = np.broadcast_to(np.arange(L, dtype=np.int32), tokens.shape)
  return dict(tokens=tokens, valid=valid, types=types, tasks=tasks, positions=positions,
              mask=masks.padding_mask(valid))


def _hf_inputs(layout, b):
  kw = dict(input_ids=torch.tensor(b['tokens'], dtype=torch.long),
            attention_mask=torch.tensor(b['valid'], dtype=torch.long))
  if layout != 'xlm-roberta':
    kw['token_type_ids'] = torch.tensor(b['types'], dtype=torch.long)
  if layout == 'ernie':
    kw['task_type_ids'] = torch.tensor(b['tasks'], dtype=torch.long)
  return kw


def _hf_out(model, layout, b):
  with torch.no_grad():
    out = model(**_hf_inputs(layout, b))
  return (out.logits if hasattr(out, 'logits') else out.last_hidden_state).numpy()


def _plm_kwargs(layout, b):
  kw = {}
  if layout != 'xlm-roberta':
    kw['token_types'] = b['types']
  if layout == 'ernie':
    kw['tasks'] = b['tasks']
  return kw


def _run_plm(module, params, b, kwargs, mask=None):
  with jax.default_matmul_precision('highest'):
    return np.asarray(module.apply({'params': params}, b['tokens'], b['positions'],
                                   b['mask'] if mask is None else mask, **kwargs))


def _max_diff(a, b, valid):
  return float(np.abs(a - b)[valid].max())  # padded query rows differ by design


@pytest.fixture(scope='module')
def saved(tmp_path_factory, batch):
  """{(layout, mlm): (directory, HF output on `batch`)}, computed once."""
  out = {}
  for i, layout in enumerate(LAYOUTS):
    for mlm in (False, True):
      d = str(tmp_path_factory.mktemp(f'{layout}_{int(mlm)}'))
      out[layout, mlm] = d, _hf_out(_save(layout, mlm, 10 * i + mlm, d), layout, batch)
  return out


def _convert(directory, mlm):
  cfg, tensors = hf.read_checkpoint(directory)
  kw = hf.encoder_kwargs(cfg)
  module = EncoderLM(Encoder(**kw)) if mlm else Encoder(**kw)
  return module, hf.to_plm(tensors, cfg, with_mlm_head=mlm), kw


@pytest.mark.parametrize('layout', list(LAYOUTS))
@pytest.mark.parametrize('mlm', [False, True])
def test_matches_hf(saved, batch, layout, mlm):
  directory, want = saved[layout, mlm]
  module, params, _ = _convert(directory, mlm)
  init = lambda: nn.unbox(module.init(jax.random.PRNGKey(0), batch['tokens'],
                                      batch['positions'], batch['mask'],
                                      **_plm_kwargs(layout, batch)))['params']
  shapes = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype), t)
  assert shapes(params) == shapes(jax.eval_shape(init))  # the whole tree, nothing extra
  got = _run_plm(module, params, batch, _plm_kwargs(layout, batch))
  diff = _max_diff(got, want, batch['valid'])
  print(f'{layout} mlm={mlm}: max abs diff {diff:.2e}')
  assert diff < TOL


def test_mlm_gathered_positions(saved, batch):
  """BERT's max_predictions_per_seq: logits at gathered positions, repeats allowed."""
  directory, want = saved['bert', True]
  module, params, _ = _convert(directory, True)
  where = np.array([[0, 7, 15], [1, 10, 3], [4, 0, 4]], np.int32)
  got = _run_plm(module, params, batch, dict(token_types=batch['types'],
                                            predict_positions=where))
  assert float(np.abs(got - np.take_along_axis(want, where[..., None], axis=1)).max()) < TOL


def test_encoder_only_from_mlm_checkpoint(saved):
  cfg, tensors = hf.read_checkpoint(saved['bert', True][0])
  full = hf.to_plm(tensors, cfg, with_mlm_head=True)
  alone = hf.to_plm(tensors, cfg, with_mlm_head=False)
  assert jax.tree.all(jax.tree.map(np.array_equal, alone, full['encoder']))


@pytest.mark.parametrize('control', ['swap_query_heads', 'perturb_one_weight',
                                     'no_token_types', 'no_padding_mask'])
def test_negative_controls_differ(saved, batch, control):
  """Each deliberate mistake must fail the parity check, so it can fail."""
  directory, want = saved['bert', False]
  module, params, _ = _convert(directory, False)
  kwargs, mask = dict(token_types=batch['types']), None
  if control == 'swap_query_heads':
    q = params['layer_0']['self_attention']['query']
    q['kernel'], q['bias'] = q['kernel'][:, [1, 0, 2, 3]], q['bias'][[1, 0, 2, 3]]
  elif control == 'perturb_one_weight':
    params['layer_1']['mlp']['wo']['kernel'][3, 5] += 0.5
  elif control == 'no_token_types':
    kwargs = {}
  else:
    mask = jnp.ones((len(LENGTHS), 1, L, L), bool)
  diff = _max_diff(_run_plm(module, params, batch, kwargs, mask), want, batch['valid'])
  print(f'{control}: max abs diff {diff:.2e}')
  assert diff > DIFFERS


@pytest.mark.parametrize('layout,mlm', [('bert', True), ('ernie', False)])
def test_export_loads_in_transformers(saved, batch, tmp_path, layout, mlm):
  """HF -> plm -> HF: transformers reads plm's export and computes the same outputs."""
  directory, want = saved[layout, mlm]
  _, params, kw = _convert(directory, mlm)
  hf.write_checkpoint(str(tmp_path), params, kw)
  back = transformers.AutoModelForMaskedLM if mlm else transformers.AutoModel
  model = back.from_pretrained(str(tmp_path)).eval()
  assert type(model).__name__ == LAYOUTS[layout][2 if mlm else 1]
  diff = _max_diff(_hf_out(model, layout, batch), want, batch['valid'])
  print(f'{layout} export round trip: max abs diff {diff:.2e}')
  assert diff < TOL


def test_pytorch_bin_read_without_pickled_code(saved, tmp_path):
  directory = saved['bert', False][0]
  cfg, tensors = hf.read_checkpoint(directory)
  torch.save({k: torch.tensor(v) for k, v in tensors.items()}, tmp_path / 'pytorch_model.bin')
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(cfg, f)
  _, from_bin = hf.read_checkpoint(str(tmp_path))
  assert sorted(from_bin) == sorted(tensors)
  assert all(np.array_equal(from_bin[k], tensors[k]) for k in tensors)
  # A pickle that would run code on load is refused (weights_only=True).
  torch.save({'x': _Evil()}, tmp_path / 'pytorch_model.bin')
  with pytest.raises(Exception, match='(?i)weights.only|unsupported|global'):
    hf.read_tensors(str(tmp_path))


class _Evil:
  def __reduce__(self):
    return (os.system, ('echo pwned',))


def _copy_checkpoint(src, dst, edit_tensors=None, edit_config=None):
  cfg, tensors = hf.read_checkpoint(src)
  if edit_tensors:
    edit_tensors(tensors)
  if edit_config:
    edit_config(cfg)
  from safetensors.numpy import save_file
  os.makedirs(dst, exist_ok=True)
  save_file(tensors, os.path.join(dst, 'model.safetensors'))
  with open(os.path.join(dst, 'config.json'), 'w') as f:
    json.dump(cfg, f)
  return str(dst)


def test_bad_checkpoints_name_the_problem(saved, tmp_path):
  src = saved['bert', True][0]
  def narrow(t):
    t['bert.encoder.layer.1.attention.self.query.weight'] = \
        t['bert.encoder.layer.1.attention.self.query.weight'][:60]
  cfg, tensors = hf.read_checkpoint(_copy_checkpoint(src, tmp_path / 'a', narrow))
  with pytest.raises(ValueError, match=r"bert\.encoder\.layer\.1\.attention\.self\.query\.weight"
                     r"' has shape \(60, 64\), expected \(64, 64\)"):
    hf.to_plm(tensors, cfg, with_mlm_head=True)
  cfg, tensors = hf.read_checkpoint(_copy_checkpoint(
      src, tmp_path / 'b', lambda t: t.pop('bert.encoder.layer.0.output.LayerNorm.bias')))
  with pytest.raises(ValueError, match=r"'bert\.encoder\.layer\.0\.output\.LayerNorm\.bias' is "
                     'missing'):
    hf.to_plm(tensors, cfg, with_mlm_head=True)
  def untie(t):
    t['cls.predictions.decoder.weight'] = np.zeros((V, 64), np.float32)
  cfg, tensors = hf.read_checkpoint(_copy_checkpoint(src, tmp_path / 'c', untie))
  with pytest.raises(ValueError, match='decoder.weight differs from the word embeddings'):
    hf.to_plm(tensors, cfg, with_mlm_head=True)
  def one_layer(c):
    c['num_hidden_layers'] = 1
  cfg, tensors = hf.read_checkpoint(_copy_checkpoint(src, tmp_path / 'd', None, one_layer))
  with pytest.raises(ValueError, match=r'cannot represent.*encoder\.layer\.1\.'):
    hf.to_plm(tensors, cfg, with_mlm_head=True)
  cfg, tensors = hf.read_checkpoint(saved['bert', False][0])
  with pytest.raises(ValueError, match='cls.predictions.transform.dense.weight.*missing.*'
                     'ForMaskedLM'):
    hf.to_plm(tensors, cfg, with_mlm_head=True)


def test_unsupported_architecture_lists_supported(saved, tmp_path):
  def gpt2(c):
    c.update(model_type='gpt2', architectures=['GPT2LMHeadModel'])
  d = _copy_checkpoint(saved['bert', False][0], tmp_path / 'g', None, gpt2)
  with pytest.raises(ValueError, match=r"model_type='gpt2' \(architectures \['GPT2LMHeadModel'\]"
                     r"\) is not supported; plm converts bert: .*ernie: .*xlm-roberta"):
    hf.read_checkpoint(d)
  with pytest.raises(FileNotFoundError, match='config.json'):
    hf.read_checkpoint(str(tmp_path / 'nothing'))
  os.makedirs(tmp_path / 'nw')
  with open(tmp_path / 'nw' / 'config.json', 'w') as f:
    json.dump({'model_type': 'bert'}, f)
  with pytest.raises(FileNotFoundError, match='model.safetensors'):
    hf.read_checkpoint(str(tmp_path / 'nw'))


def test_encoder_kwargs():
  cfg = transformers.BertConfig(**SHAPE, type_vocab_size=2).to_dict()
  kw = hf.encoder_kwargs(cfg)
  assert kw == dict(vocab_size=V, layers=2, hidden=64, heads=4, ff=128, activation='gelu',
                    dropout=0.1, attention_dropout=0.1, max_len=64, num_segments=2, num_tasks=0,
                    positions='learned', post_ln=True, ln_eps=1e-12)
  Encoder(**kw)  # every key is an Encoder field
  with pytest.raises(ValueError, match='hidden_act'):
    hf.encoder_kwargs({**cfg, 'hidden_act': 'silu'})
  with pytest.raises(ValueError, match='position_embedding_type'):
    hf.encoder_kwargs({**cfg, 'position_embedding_type': 'relative_key'})
