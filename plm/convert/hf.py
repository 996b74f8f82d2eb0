"""HF transformers checkpoints <-> plm Encoder / EncoderLM parameters.

Reads a directory as transformers writes it (`config.json` + `model.safetensors`,
or a PyTorch `pytorch_model.bin`, read only with `torch.load(weights_only=True)`
so that a checkpoint never runs code) and writes plm encoders back the same way.

  hf_cfg, tensors = read_checkpoint(path)
  kwargs = encoder_kwargs(hf_cfg)            # Encoder(**kwargs) fields
  params = to_plm(tensors, hf_cfg, with_mlm_head=True)
  write_checkpoint(out_dir, params, kwargs)  # BertModel / BertForMaskedLM layout

Layouts: BERT (also UNILM, whose checkpoints are BERT's), ERNIE 1.0 / 2.0 (BERT
plus the task-type table) and RoBERTa / XLM-R (positions offset past the pad id,
one token type, `lm_head`). Every tensor is checked by name and shape; a tensor
plm cannot represent is an error, never dropped.
"""
import json
import os
from typing import NamedTuple

import numpy as np

from plm.errors import MissingFileError, UserError

# model_type -> the checkpoints it covers
SUPPORTED = {
    'bert': 'BERT, UNILM (BertModel, BertForMaskedLM, BertForPreTraining)',
    'ernie': 'ERNIE 1.0 / 2.0 (ErnieModel, ErnieForMaskedLM, ErnieForPreTraining)',
    'roberta': 'RoBERTa (RobertaModel, RobertaForMaskedLM)',
    'xlm-roberta': 'XLM-R (XLMRobertaModel, XLMRobertaForMaskedLM)',
}
# transformers' `hidden_act` -> plm's `activation` ('gelu' is the erf form in both).
ACTIVATIONS = {'gelu': 'gelu', 'gelu_new': 'gelu_tanh', 'gelu_pytorch_tanh': 'gelu_tanh',
               'relu': 'relu'}
_PLM_TO_HF_ACT = {'gelu': 'gelu', 'gelu_tanh': 'gelu_new', 'relu': 'relu'}
WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


def read_config(path: str) -> dict:
  """`{path}/config.json` as a dict, its model_type checked."""
  file = os.path.join(path, 'config.json')
  if not os.path.isfile(file):
    raise MissingFileError(f'{file} does not exist: point at a transformers checkpoint '
                           'directory (config.json and model.safetensors)')
  with open(file, encoding='utf-8') as f:
    cfg = json.load(f)
  kind = cfg.get('model_type')
  if kind not in SUPPORTED:
    raise UserError(f'{file}: model_type={kind!r} (architectures '
                    f"{cfg.get('architectures')}) is not supported; plm converts "
                    + '; '.join(f'{k}: {v}' for k, v in SUPPORTED.items()))
  return cfg


def read_tensors(path: str) -> dict[str, np.ndarray]:
  """{name: array} of `model.safetensors`, else of `pytorch_model.bin` (torch needed)."""
  file = os.path.join(path, 'model.safetensors')
  if os.path.isfile(file):
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    return load_file(file)
  file = os.path.join(path, 'pytorch_model.bin')
  if not os.path.isfile(file):
    raise MissingFileError(f'{path} holds none of {WEIGHT_FILES}; save the model with '
                           'save_pretrained(path) (safetensors is the default)')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(f'{file} is a PyTorch pickle and torch is not installed; install torch '
                    'or convert it to model.safetensors') from None
  state = torch.load(file, map_location='cpu', weights_only=True)  # never runs pickled code
  return {k: v.float().numpy() for k, v in state.items()}


def read_checkpoint(path: str) -> tuple[dict, dict[str, np.ndarray]]:
  path = os.path.expanduser(path)
  return read_config(path), read_tensors(path)


def _roberta(cfg: dict) -> bool:
  return cfg['model_type'] in ('roberta', 'xlm-roberta')


def _position_offset(cfg: dict) -> int:
  """RoBERTa numbers positions from pad_token_id + 1; plm and BERT from 0."""
  return cfg.get('pad_token_id', 1) + 1 if _roberta(cfg) else 0


def encoder_kwargs(cfg: dict) -> dict:
  """plm Encoder fields for a transformers config dict (read_config)."""
  act = cfg.get('hidden_act')
  if act not in ACTIVATIONS:
    raise UserError(f'hidden_act={act!r} has no plm activation; known: {sorted(ACTIVATIONS)}')
  if cfg.get('position_embedding_type', 'absolute') != 'absolute':
    raise UserError(f"position_embedding_type={cfg.get('position_embedding_type')!r}: "
                    "plm supports only 'absolute' (learned) positions")
  tasks = cfg.get('task_type_vocab_size', 0) if cfg.get('use_task_id') else 0
  return dict(
      vocab_size=cfg['vocab_size'], layers=cfg['num_hidden_layers'], hidden=cfg['hidden_size'],
      heads=cfg['num_attention_heads'], ff=cfg['intermediate_size'],
      activation=ACTIVATIONS[act], dropout=cfg.get('hidden_dropout_prob', 0.1),
      attention_dropout=cfg.get('attention_probs_dropout_prob', 0.1),
      max_len=cfg['max_position_embeddings'] - _position_offset(cfg),
      num_segments=cfg.get('type_vocab_size', 2), num_tasks=tasks, positions='learned',
      post_ln=True, ln_eps=cfg.get('layer_norm_eps', 1e-12))


class _Entry(NamedTuple):
  plm: tuple  # path in the plm tree
  hf: str  # tensor name, without the base model's prefix
  shape: tuple  # plm shape
  hf_shape: tuple  # the HF tensor's shape
  kind: str  # how the HF tensor maps onto it: see _to_plm


def _entries(kw: dict, cfg: dict, with_mlm_head: bool) -> list[_Entry]:
  """Every plm parameter with its HF tensor: the one table import and export share."""
  h, heads, ff, v = kw['hidden'], kw['heads'], kw['ff'], kw['vocab_size']
  hd = h // heads
  offset = _position_offset(cfg)
  def table(plm, hf, rows):
    return _Entry(('embeddings', plm, 'embedding'), f'embeddings.{hf}.weight', (rows, h),
                  (rows, h), 'copy')
  e = [table('token', 'word_embeddings', v),
       _Entry(('embeddings', 'position', 'embedding'), 'embeddings.position_embeddings.weight',
              (kw['max_len'], h), (kw['max_len'] + offset, h), 'positions')]
  if kw['num_segments']:
    e.append(table('segment', 'token_type_embeddings', kw['num_segments']))
  if kw['num_tasks']:
    e.append(table('task', 'task_type_embeddings', kw['num_tasks']))
  def ln(plm, hf):
    return [_Entry(plm + ('scale',), f'{hf}.weight', (h,), (h,), 'copy'),
            _Entry(plm + ('bias',), f'{hf}.bias', (h,), (h,), 'copy')]
  def dense(plm, hf, d_in, d_out, kshape=None, bshape=None):
    # torch Linear weights are [out, in]
    return [_Entry(plm + ('kernel',), f'{hf}.weight', kshape or (d_in, d_out), (d_out, d_in),
                   'linear'),
            _Entry(plm + ('bias',), f'{hf}.bias', bshape or (d_out,), (d_out,), 'copy')]
  e += ln(('embed_ln',), 'embeddings.LayerNorm')
  for i in range(kw['layers']):
    p, q = (f'layer_{i}',), f'encoder.layer.{i}'
    for name in ('query', 'key', 'value'):
      # HF's [H, H] output axis is [heads, head_dim] with heads contiguous.
      e += dense(p + ('self_attention', name), f'{q}.attention.self.{name}', h, h,
                 kshape=(h, heads, hd), bshape=(heads, hd))
    e += dense(p + ('self_attention', 'out'), f'{q}.attention.output.dense', h, h,
               kshape=(heads, hd, h))
    e += ln(p + ('self_attention_ln',), f'{q}.attention.output.LayerNorm')
    e += dense(p + ('mlp', 'wi'), f'{q}.intermediate.dense', h, ff)
    e += dense(p + ('mlp', 'wo'), f'{q}.output.dense', ff, h)
    e += ln(p + ('mlp_ln',), f'{q}.output.LayerNorm')
  if not with_mlm_head:
    return e
  e = [x._replace(plm=('encoder',) + x.plm) for x in e]
  head = ('lm_head.dense', 'lm_head.layer_norm', 'lm_head.bias') if _roberta(cfg) else (
      'cls.predictions.transform.dense', 'cls.predictions.transform.LayerNorm',
      'cls.predictions.bias')
  e += [x._replace(hf='!' + x.hf) for x in  # '!': a name outside the base model's prefix
        dense(('mlm_head', 'transform'), head[0], h, h) + ln(('mlm_head', 'transform_ln'), head[1])
        + [_Entry(('mlm_head', 'bias'), head[2], (v,), (v,), 'copy')]]
  return e


def _to_plm(x: np.ndarray, entry: _Entry, offset: int) -> np.ndarray:
  """The HF tensor `x` (shape checked) in plm's layout."""
  if entry.kind == 'linear':
    return x.T.reshape(entry.shape)
  if entry.kind == 'positions':
    return x[offset:]
  return x.reshape(entry.shape)


def _to_hf(x: np.ndarray, entry: _Entry, offset: int) -> np.ndarray:
  x = np.asarray(x, np.float32)
  if entry.kind == 'linear':
    return np.ascontiguousarray(x.reshape(entry.hf_shape[::-1]).T)
  if entry.kind == 'positions':  # BERT export: offset 0
    return np.concatenate([np.zeros((offset, x.shape[1]), np.float32), x])
  return x.reshape(entry.hf_shape)


# Tensors plm knowingly leaves out: the pooler and next-sentence head (plm's
# classifier has its own), buffers, and the tied decoder (checked equal below).
_IGNORED = ('pooler.', 'cls.seq_relationship.', 'embeddings.position_ids',
            'embeddings.token_type_ids')


def _base_prefix(tensors: dict) -> str:
  """'' for BertModel's names, 'bert.' / 'roberta.' / ... for a model with heads."""
  for name in tensors:
    if name.endswith('embeddings.word_embeddings.weight'):
      return name[:-len('embeddings.word_embeddings.weight')]
  raise UserError('no embeddings.word_embeddings.weight among the checkpoint tensors '
                  f'({sorted(tensors)[:5]} ...): not a BERT-layout checkpoint')


def _legacy_names(tensors: dict) -> dict:
  """Old TF-converted checkpoints call LayerNorm's weight/bias gamma/beta."""
  return {k.replace('LayerNorm.gamma', 'LayerNorm.weight').replace('LayerNorm.beta',
                                                                  'LayerNorm.bias'): v
          for k, v in tensors.items()}


def to_plm(tensors: dict, cfg: dict, *, with_mlm_head: bool) -> dict:
  """plm params (nested dict of float32 numpy) of an HF checkpoint's tensors.

  with_mlm_head=True gives EncoderLM's tree ({'encoder', 'mlm_head'}) and needs
  a masked-LM head in the checkpoint; False gives Encoder's tree.
  """
  tensors = _legacy_names(tensors)
  kw = encoder_kwargs(cfg)
  if kw['hidden'] % kw['heads']:
    raise UserError(f"num_attention_heads={kw['heads']} does not divide hidden_size="
                    f"{kw['hidden']}")
  prefix, offset = _base_prefix(tensors), _position_offset(cfg)
  params, used = {}, set()
  for entry in _entries(kw, cfg, with_mlm_head):
    name = entry.hf[1:] if entry.hf.startswith('!') else prefix + entry.hf
    if name not in tensors:
      hint = (' (with_mlm_head=True needs a ...ForMaskedLM checkpoint)'
              if entry.hf.startswith('!') else '')
      raise UserError(f'HF parameter {name!r} is missing{hint}')
    x = np.asarray(tensors[name], np.float32)  # plm keeps params in float32
    want = entry.hf_shape
    if x.shape != want:
      raise UserError(f'HF parameter {name!r} has shape {x.shape}, expected {want} '
                      '(from config.json)')
    node = params
    for key in entry.plm[:-1]:
      node = node.setdefault(key, {})
    node[entry.plm[-1]] = _to_plm(x, entry, offset)
    used.add(name)
  head = 'lm_head.' if _roberta(cfg) else 'cls.predictions.'
  decoder = tensors.get(f'{head}decoder.weight')
  if with_mlm_head and decoder is not None:
    if not np.array_equal(decoder, tensors[prefix + 'embeddings.word_embeddings.weight']):
      raise UserError(f'HF parameter {head}decoder.weight differs from the word embeddings: '
                      'plm ties the MLM decoder to the token table and cannot represent it')
    used.add(f'{head}decoder.weight')
  if with_mlm_head:
    used.add(f'{head}decoder.bias')  # transformers ties it to {head}bias
  unused = tuple(prefix + i for i in _IGNORED) + _IGNORED + (
      () if with_mlm_head else ('cls.', 'lm_head.'))
  leftover = sorted(k for k in tensors if k not in used and not k.startswith(unused))
  if leftover:
    raise UserError(f'HF parameters plm cannot represent: {leftover} (more layers than '
                    'config.json says, or a part plm does not have)')
  return params


def to_hf(params: dict, kw: dict) -> dict[str, np.ndarray]:
  """The BertModel (or BertForMaskedLM, for EncoderLM's tree) tensors of plm params."""
  with_mlm_head = 'mlm_head' in params
  cfg = {'model_type': 'bert'}
  prefix = 'bert.' if with_mlm_head else ''
  out = {}
  for entry in _entries(kw, cfg, with_mlm_head):
    node = params
    for key in entry.plm:
      if key not in node:
        raise UserError(f"plm parameter {'/'.join(entry.plm)} is missing (model fields {kw})")
      node = node[key]
    if tuple(np.shape(node)) != entry.shape:
      raise UserError(f"plm parameter {'/'.join(entry.plm)} has shape {np.shape(node)}, "
                      f'expected {entry.shape}')
    name = entry.hf[1:] if entry.hf.startswith('!') else prefix + entry.hf
    out[name] = _to_hf(np.asarray(node), entry, 0)
  if with_mlm_head:  # written out so that loaders that do not tie still read the same model
    out['cls.predictions.decoder.weight'] = out['bert.embeddings.word_embeddings.weight'].copy()
    out['cls.predictions.decoder.bias'] = out['cls.predictions.bias'].copy()
  return out


def hf_config(kw: dict, with_mlm_head: bool, special_ids: dict | None = None) -> dict:
  """A transformers BertConfig dict for Encoder fields `kw`."""
  if kw.get('positions', 'learned') != 'learned' or not kw.get('post_ln', True):
    raise UserError('only post-LN encoders with learned positions have a BERT layout to export '
                    f"(model.positions={kw.get('positions')!r}, model.post_ln={kw.get('post_ln')})")
  if kw.get('num_languages'):
    raise UserError('XLM language embeddings have no place in a BERT checkpoint; export a '
                    'model with model.num_languages=0')
  cfg = {
      'architectures': ['BertForMaskedLM' if with_mlm_head else 'BertModel'],
      'model_type': 'bert', 'vocab_size': kw['vocab_size'], 'hidden_size': kw['hidden'],
      'num_hidden_layers': kw['layers'], 'num_attention_heads': kw['heads'],
      'intermediate_size': kw['ff'], 'hidden_act': _PLM_TO_HF_ACT[kw['activation']],
      'hidden_dropout_prob': kw['dropout'], 'attention_probs_dropout_prob':
      kw['attention_dropout'], 'max_position_embeddings': kw['max_len'],
      'type_vocab_size': kw['num_segments'], 'layer_norm_eps': kw['ln_eps'],
      'position_embedding_type': 'absolute', 'initializer_range': 0.02,
      'tie_word_embeddings': True,
  }
  if kw.get('num_tasks'):  # ERNIE 2.0's task embeddings: transformers' ErnieModel reads them
    cfg.update(model_type='ernie', use_task_id=True, task_type_vocab_size=kw['num_tasks'],
               architectures=['ErnieForMaskedLM' if with_mlm_head else 'ErnieModel'])
  cfg.update(special_ids or {})
  return cfg


def write_checkpoint(path: str, params: dict, kw: dict, special_ids: dict | None = None) -> str:
  """Writes `{path}/config.json` and `{path}/model.safetensors` for plm params."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  with_mlm_head = 'mlm_head' in params
  cfg = hf_config(kw, with_mlm_head, special_ids)
  tensors = to_hf(params, kw)
  if cfg['model_type'] == 'ernie':
    tensors = {k.replace('bert.', 'ernie.', 1): v for k, v in tensors.items()}
  os.makedirs(path, exist_ok=True)
  save_file(tensors, os.path.join(path, 'model.safetensors'), metadata={'format': 'pt'})
  with open(os.path.join(path, 'config.json'), 'w', encoding='utf-8') as f:
    json.dump(cfg, f, indent=1, sort_keys=True)
  return path

