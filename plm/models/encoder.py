"""BERT / XLM encoder and its language-model head.

One module for BERT, XLM, UNILM, ERNIE 2.0 and ERNIE-Tiny: they differ only in
their embeddings, sizes and the masks they are given.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict

from plm import masks
from plm.compress import config as compress_config
from plm.errors import UserError
from plm.models import sizes
from plm.nn import quant as quant_lib
from plm.nn.attention import IMPLEMENTATIONS
from plm.nn.dropout import Dropout
from plm.nn.embeddings import Embeddings
from plm.nn import pooling as pooling_lib
from plm.nn.heads import MlmHead
from plm.nn.transformer import TransformerBlock, layer_norm

# model.remat: what the backward pass keeps of each block's forward pass
# (jax.checkpoint_policies); the rest is recomputed.
REMAT_POLICIES = {
    'none': None,  # no remat: keep every activation (fastest, most memory)
    'full': jax.checkpoint_policies.nothing_saveable,  # recompute the whole block
    'dots_saveable': jax.checkpoint_policies.dots_saveable,  # keep every matmul output
    # keep the weight matmuls, recompute attention's batched QK^T and PV
    'dots_with_no_batch_dims_saveable': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def make_blocks(m: nn.Module, cross_attention: bool = False) -> list[nn.Module]:
  """`m.layers` TransformerBlocks named layer_i from m's fields, remat by `m.remat`."""
  remat = {True: 'full', False: 'none'}.get(m.remat, m.remat)
  if remat not in REMAT_POLICIES:
    raise UserError(f'model.remat={m.remat!r} is unknown; use one of {list(REMAT_POLICIES)}')
  # Positional indices with self = 0: deterministic (5) and decode (6) are Python bools.
  block = TransformerBlock if remat == 'none' else nn.remat(
      TransformerBlock, static_argnums=(5, 6), policy=REMAT_POLICIES[remat])
  # the compression fields (plm/compress/config.py); models without them are uncompressed
  layer_heads, layer_ff = compress_config.layer_shapes(
      m.layers, m.heads, m.ff, getattr(m, 'layer_heads', ()), getattr(m, 'layer_ff', ()))
  dense = quant_lib.dense_class(getattr(m, 'quant', ''))
  return [block(layer_heads[i], m.hidden // m.heads, layer_ff[i], m.activation, m.dropout,
                m.attention_dropout, m.post_ln, m.ln_eps, cross_attention=cross_attention,
                dtype=m.dtype, attention=m.attention, dense=dense, name=f'layer_{i}')
          for i in range(m.layers)]


class Encoder(nn.Module):
  """Embeddings + a stack of Transformer blocks; returns hidden states [B, L, H]."""
  vocab_size: int
  layers: int = 4
  hidden: int = 256
  heads: int = 4
  ff: int = 1024
  activation: str = 'gelu'  # 'gelu' (BERT, erf), 'gelu_tanh', 'relu'
  dropout: float = 0.1
  attention_dropout: float = 0.1
  max_len: int = 512  # positions the model accepts
  num_segments: int = 2  # BERT token types; 0 = none (XLM)
  num_languages: int = 0  # XLM language embeddings; 0 = none
  num_tasks: int = 0  # ERNIE 2.0 task embeddings; 0 = none
  positions: str = 'learned'  # 'learned' or 'sinusoidal'
  post_ln: bool = True  # BERT/XLM post-LN; False = pre-LN with a final LayerNorm
  ln_eps: float = 1e-12
  remat: str = 'none'  # a REMAT_POLICIES key (True / False mean 'full' / 'none')
  # the contractions' operand dtype (plm/nn/precision.py); params, activations, LayerNorm,
  # softmax and logits stay float32
  dtype: Any = jnp.float32
  attention: str = 'einsum'  # einsum | xla | cudnn (plm/nn/attention.py)
  # compression's fields: their meaning and defaults are plm/compress/config.py's DEFAULTS
  layer_heads: tuple = ()
  layer_ff: tuple = ()
  quant: str = ''

  def setup(self):
    self.embeddings = Embeddings(self.vocab_size, self.hidden, self.max_len, self.num_segments,
                                 self.num_languages, self.num_tasks, self.positions)
    self.embed_ln = layer_norm(self.ln_eps, 'embed_ln') if self.post_ln else None
    self.embed_dropout = Dropout(self.dropout)
    self.blocks = make_blocks(self)
    self.final_ln = None if self.post_ln else layer_norm(self.ln_eps, 'final_ln')

  def __call__(self, tokens, positions, mask, *, token_types=None, langs=None, tasks=None,
               deterministic: bool = True, decode: bool = False, all_layers: bool = False):
    """Hidden states [B, L, H]; `decode` reads and writes the 'cache' collection.

    With decode=True, `model.init` on a full-length [B, max_len] input shapes the
    KV cache; later calls feed the next positions (see plm/decode/lm.py).
    With all_layers=True, a tuple of layers + 1 arrays instead: [0] the
    embeddings (after their LayerNorm), [k] the output of block k; the last is
    the usual output (pre-LN's final LayerNorm applied to it only).
    """
    if tokens.shape[-1] > self.max_len:
      raise UserError(f'sequence length {tokens.shape[-1]} exceeds model.max_len={self.max_len}; '
                      'raise model.max_len or lower data.seq_len')
    x = self.embeddings(tokens, positions, token_types=token_types, langs=langs, tasks=tasks)
    if self.embed_ln is not None:
      x = self.embed_ln(x)
    x = self.embed_dropout(x, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    states = [x]
    for block in self.blocks:
      x = block(x, mask, None, None, deterministic, decode)
      states.append(x)
    if self.final_ln is not None:
      states[-1] = self.final_ln(x)
    return tuple(states) if all_layers else states[-1]

  def sentence_vectors(self, tokens, langs=None, *, layer: int = -1, pooling: str = 'mean',
                       pad_id: int = 0):
    """One float32 vector per row [B, H]: block `layer`'s states (0 = the embeddings, -1 =
    the last) pooled over the row's real tokens (plm/nn/pooling.py). Rows are right-padded
    with `pad_id`; positions count from 0."""
    valid = tokens != pad_id
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    states = self(tokens, positions, masks.padding_mask(valid), langs=langs, all_layers=True)
    return pooling_lib.pool(states[layer], valid, pooling).astype(jnp.float32)


class EncoderLM(nn.Module):
  """Encoder + tied MLM head: logits at `predict_positions` (or everywhere).

  Predicting only at the gathered positions (BERT's max_predictions_per_seq)
  avoids a [B, L, V] logits tensor for MLM, where only ~15% of positions count.
  `hidden` and `logits` are the two halves of `__call__`, so a loss can run the
  head over chunks of positions (plm/objectives/losses.py).
  """
  encoder: Encoder

  def setup(self):
    self.mlm_head = MlmHead(self.encoder.vocab_size, self.encoder.activation,
                            self.encoder.ln_eps, self.encoder.dtype)

  def __call__(self, tokens, positions, mask, **kwargs):
    return self.logits(self.hidden(tokens, positions, mask, **kwargs))

  def hidden(self, tokens, positions, mask, *, predict_positions=None, token_types=None,
             langs=None, tasks=None, deterministic: bool = True, decode: bool = False):
    """The encoder's states [B, L, H], or [B, P, H] at `predict_positions`."""
    x = self.encoder(tokens, positions, mask, token_types=token_types, langs=langs,
                     tasks=tasks, deterministic=deterministic, decode=decode)
    if predict_positions is not None:
      x = jnp.take_along_axis(x, predict_positions[..., None], axis=1)
    return x

  def logits(self, x):
    """Vocabulary logits (float32) of hidden states [..., H]."""
    return self.mlm_head(x, self.encoder.embeddings.attend)

  def sentence_vectors(self, tokens, langs=None, **options):
    """The encoder's sentence vectors [B, H] (Encoder.sentence_vectors)."""
    return self.encoder.sentence_vectors(tokens, langs, **options)


DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}  # model.dtype: compute dtype
# How a model computes, not what it is: a checkpoint serves every setting of these.
COMPUTE_FIELDS = ('dtype', 'remat', 'attention')
SHAPE_FIELDS = ('size', 'layers', 'hidden', 'heads', 'ff', 'max_len', 'num_segments',
                'num_languages', 'num_tasks', 'positions', 'post_ln')  # fix the param shapes
# Compression's fields (plm/compress/config.py) came after the first checkpoints: a saved
# meta without them had their defaults (plm/meta.py).
DEFAULT_WHEN_ABSENT = compress_config.DEFAULTS


def config() -> ml_collections.ConfigDict:
  """The encoder's fields (model.*); `encoder` and `encoder_lm` share them."""
  c = ml_collections.ConfigDict()
  c.name = 'encoder_lm'  # plm.models.NAMES
  c.size = 'mini'  # plm/models/sizes.py: test, tiny, mini, small, medium, base, large, xlm
  c.layers = config_dict.placeholder(int)  # overrides the size table when set
  c.hidden = config_dict.placeholder(int)
  c.heads = config_dict.placeholder(int)
  c.ff = config_dict.placeholder(int)
  c.activation = 'gelu'  # gelu (erf, as BERT/XLM), gelu_tanh, relu
  c.dropout = 0.1
  c.attention_dropout = 0.1
  c.max_len = 256  # longest sequence the position table holds
  c.num_segments = 2  # BERT token types (sentence A/B, source/target); 0 = none
  c.num_languages = 0  # XLM language embeddings; 0 = none, -1 = one per data.languages entry
  c.num_tasks = 0  # ERNIE 2.0 task embeddings; 0 = none
  c.positions = 'learned'  # learned | sinusoidal
  c.post_ln = True  # BERT/XLM post-LN; False = pre-LN
  c.ln_eps = 1e-12  # LayerNorm epsilon (BERT's)
  # float32 | bfloat16: matmul operands in bf16, accumulated in float32 (plm/nn/precision.py);
  # params, optimizer, LayerNorm, softmax and loss stay float32
  c.dtype = 'float32'
  c.remat = 'none'  # recompute activations in backward: none | full | dots_saveable | ...
  c.attention = 'einsum'  # einsum (ours) | xla | cudnn (jax.nn.dot_product_attention)
  return compress_config.add_model_fields(c)  # layer_heads, layer_ff, quant


def build_encoder(mc, vocab_size: int) -> Encoder:
  """An Encoder from the model.* fields (the size table, then explicit overrides)."""
  shape = sizes.get(mc.size)
  for key in shape:
    if mc.get(key) is not None:
      shape[key] = mc[key]
  if shape['hidden'] % shape['heads']:
    raise UserError(f"model.hidden={shape['hidden']} is not divisible by "
                    f"model.heads={shape['heads']}")
  if mc.dtype not in DTYPES:
    raise UserError(f'model.dtype={mc.dtype!r} is unknown; use one of {list(DTYPES)} (parameters '
                    'and optimizer state stay float32 either way)')
  if mc.attention not in IMPLEMENTATIONS:
    raise UserError(f'model.attention={mc.attention!r} is unknown; use one of {IMPLEMENTATIONS}')
  if mc.num_languages < 0:
    raise UserError(f'model.num_languages={mc.num_languages} was not resolved; plm.run.resolve '
                    'sets -1 to the number of data.languages')
  fields = ('activation', 'dropout', 'attention_dropout', 'max_len', 'num_segments',
            'num_languages', 'num_tasks', 'positions', 'post_ln', 'ln_eps', 'remat', 'attention')
  return Encoder(vocab_size=vocab_size, **shape, **{k: mc[k] for k in fields},
                 dtype=DTYPES[mc.dtype], **compress_config.model_fields(mc))


def build(mc, vocab_size: int) -> nn.Module:
  """`encoder` (hidden states) or `encoder_lm` (with the vocabulary head)."""
  enc = build_encoder(mc, vocab_size)
  return EncoderLM(enc) if mc.name == 'encoder_lm' else enc
