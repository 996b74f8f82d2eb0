"""Imports transformers' Flax BERT weights into plm's Encoder / EncoderLM.

Usage with a public checkpoint (downloaded elsewhere):

  hf = transformers.FlaxBertForMaskedLM.from_pretrained(path)
  kwargs = hf_config_kwargs(hf.config)
  model = EncoderLM(Encoder(**kwargs))
  params = from_hf_flax_bert(hf.params, heads=kwargs['heads'], with_mlm_head=True)
  logits = model.apply({'params': params}, tokens, positions, mask, token_types=types)

The result is a plain (unboxed) dict with the tree of
`nn.unbox(model.init(...))['params']`.
"""
from typing import Any, Mapping

import numpy as np
from flax import traverse_util
from flax.core import unfreeze

# transformers' `hidden_act` -> plm's `activation` (HF Flax 'gelu' is the erf form).
_ACTIVATIONS = {'gelu': 'gelu', 'gelu_new': 'gelu_tanh', 'gelu_pytorch_tanh': 'gelu_tanh',
                'relu': 'relu'}


def hf_config_kwargs(bert_config: Any) -> dict:
  """Encoder field values for a transformers BertConfig (or its dict form)."""
  get = bert_config.get if isinstance(bert_config, Mapping) else (
      lambda k, d=None: getattr(bert_config, k, d))
  act = get('hidden_act')
  if act not in _ACTIVATIONS:
    raise ValueError(f'hidden_act={act!r} has no plm activation; known: {sorted(_ACTIVATIONS)}')
  if get('position_embedding_type', 'absolute') != 'absolute':
    raise ValueError(f"position_embedding_type={get('position_embedding_type')!r}: "
                     "plm supports only 'absolute' (learned) positions")
  return dict(
      vocab_size=get('vocab_size'),
      layers=get('num_hidden_layers'),
      hidden=get('hidden_size'),
      heads=get('num_attention_heads'),
      ff=get('intermediate_size'),
      activation=_ACTIVATIONS[act],
      dropout=get('hidden_dropout_prob'),
      attention_dropout=get('attention_probs_dropout_prob'),
      max_len=get('max_position_embeddings'),
      num_segments=get('type_vocab_size'),
      positions='learned',
      post_ln=True,
      ln_eps=get('layer_norm_eps'),
  )


class _Reader:
  """Takes HF tensors by '/'-joined path, checking shapes and recording use."""

  def __init__(self, flat: dict):
    self.flat = {'/'.join(k): v for k, v in flat.items()}
    self.used = set()

  def shape(self, path: str) -> tuple | None:
    return np.shape(self.flat[path]) if path in self.flat else None

  def __call__(self, path: str, shape: tuple) -> np.ndarray:
    if path not in self.flat:
      raise ValueError(f'HF BERT parameter {path!r} is missing')
    x = np.asarray(self.flat[path], np.float32)  # plm keeps params in float32
    if x.shape != tuple(shape):
      raise ValueError(f'HF BERT parameter {path!r} has shape {x.shape}, expected {tuple(shape)}')
    self.used.add(path)
    return x


def _ln(read, path: str, hidden: int) -> dict:
  return {'scale': read(f'{path}/scale', (hidden,)), 'bias': read(f'{path}/bias', (hidden,))}


def _dense(read, path: str, d_in: int, d_out: int) -> dict:
  return {'kernel': read(f'{path}/kernel', (d_in, d_out)), 'bias': read(f'{path}/bias', (d_out,))}


def _layer(read, prefix: str, hidden: int, heads: int, ff: int) -> dict:
  """One HF BertLayer -> plm TransformerBlock (post-LN)."""
  head_dim = hidden // heads
  attn = {}
  # HF splits the [H, H] projections' output axis into [heads, head_dim]
  # (heads contiguous), so plain reshapes give DenseGeneral's layout.
  for name in ('query', 'key', 'value'):
    d = _dense(read, f'{prefix}/attention/self/{name}', hidden, hidden)
    attn[name] = {'kernel': d['kernel'].reshape(hidden, heads, head_dim),
                  'bias': d['bias'].reshape(heads, head_dim)}
  out = _dense(read, f'{prefix}/attention/output/dense', hidden, hidden)
  attn['out'] = {'kernel': out['kernel'].reshape(heads, head_dim, hidden), 'bias': out['bias']}
  return {
      'self_attention': attn,
      'self_attention_ln': _ln(read, f'{prefix}/attention/output/LayerNorm', hidden),
      'mlp': {'wi': _dense(read, f'{prefix}/intermediate/dense', hidden, ff),
              'wo': _dense(read, f'{prefix}/output/dense', ff, hidden)},
      'mlp_ln': _ln(read, f'{prefix}/output/LayerNorm', hidden),
  }


def from_hf_flax_bert(hf_params: Mapping, *, heads: int, with_mlm_head: bool) -> dict:
  """Converts FlaxBertModel / FlaxBertForMaskedLM params to plm params.

  Args:
    hf_params: `model.params` of a transformers FlaxBertModel (top-level
      'embeddings', 'encoder', ...) or FlaxBertForMaskedLM ('bert', 'cls').
    heads: attention heads (config.num_attention_heads); shapes don't tell it.
    with_mlm_head: True gives EncoderLM params ({'encoder', 'mlm_head'}) and
      needs the 'cls' head; False gives the tree of `Encoder` alone.

  Returns:
    Nested dict of float32 numpy arrays (plm keeps params in float32 whatever
    the compute dtype).

  Raises:
    ValueError: a parameter is missing, has the wrong shape, or can't be
      represented (e.g. an untied decoder, relative position embeddings), or
      `heads` doesn't divide the hidden size.
  """
  read = _Reader(traverse_util.flatten_dict(unfreeze(hf_params)))
  top = {p.split('/')[0] for p in read.flat}
  if 'bert' in top:  # FlaxBertForMaskedLM nests the encoder
    pre = 'bert/'
  elif with_mlm_head:
    raise ValueError("with_mlm_head=True needs FlaxBertForMaskedLM params ('bert' and 'cls'); "
                     f'got top-level keys {sorted(top)}')
  else:
    pre = ''
  emb = f'{pre}embeddings'
  word = read.shape(f'{emb}/word_embeddings/embedding')
  if word is None or len(word) != 2:
    raise ValueError(f'HF BERT parameter {emb}/word_embeddings/embedding is missing or not 2-D '
                     f'(shape {word})')
  vocab, hidden = word
  if heads <= 0 or hidden % heads:
    raise ValueError(f'heads={heads} does not divide hidden size {hidden}')
  # Table lengths are free (max_len, type_vocab_size); their widths are checked.
  max_len = (read.shape(f'{emb}/position_embeddings/embedding') or (0,))[0]
  types = (read.shape(f'{emb}/token_type_embeddings/embedding') or (0,))[0]
  embeddings = {
      'token': {'embedding': read(f'{emb}/word_embeddings/embedding', (vocab, hidden))},
      'position': {'embedding': read(f'{emb}/position_embeddings/embedding', (max_len, hidden))},
  }
  if types:  # plm's Embeddings has no 'segment' table when num_segments=0
    embeddings['segment'] = {
        'embedding': read(f'{emb}/token_type_embeddings/embedding', (types, hidden))}
  encoder = {'embeddings': embeddings, 'embed_ln': _ln(read, f'{emb}/LayerNorm', hidden)}

  layer_root = f'{pre}encoder/layer/'
  ids = sorted({int(p[len(layer_root):].split('/')[0]) for p in read.flat
                if p.startswith(layer_root)})
  if not ids or ids != list(range(len(ids))):
    raise ValueError(f'HF BERT layers under {layer_root!r} must be numbered 0..n-1, got {ids}')
  ff = (read.shape(f'{layer_root}0/intermediate/dense/kernel') or (0,))[-1]
  for i in ids:
    encoder[f'layer_{i}'] = _layer(read, f'{layer_root}{i}', hidden, heads, ff)
  if not with_mlm_head:
    params = encoder
  else:
    params = {'encoder': encoder, 'mlm_head': {
        'transform': _dense(read, 'cls/predictions/transform/dense', hidden, hidden),
        'transform_ln': _ln(read, 'cls/predictions/transform/LayerNorm', hidden),
        'bias': read('cls/predictions/bias', (vocab,)),
    }}

  # Fail rather than silently drop weights. Knowingly unused: the pooler, and
  # the MLM head when only the encoder is asked for.
  unused = (f'{pre}pooler/',) + (() if with_mlm_head else ('cls/',))
  leftover = sorted(p for p in read.flat if p not in read.used and not p.startswith(unused))
  if leftover:
    raise ValueError(f'HF BERT parameters plm cannot represent: {leftover} (plm ties the MLM '
                     'decoder to the token embeddings and has only absolute positions)')
  return params
