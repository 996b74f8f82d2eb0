"""Transformer encoder-decoder (MASS pre-training, translation).

Named so an XLM (encoder_lm) checkpoint maps onto it: `encoder` is plm's
Encoder (no segments; language embeddings), `lm_head` is EncoderLM's
`mlm_head` (an MlmHead tied to the token embeddings), and `decoder` holds
`layer_{i}` blocks with cross-attention. Like every plm model it builds no mask.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict

from plm.errors import UserError
from plm.models import encoder as encoder_lib
from plm.models.encoder import Encoder
from plm.nn.dropout import Dropout
from plm.nn.embeddings import Embeddings
from plm.nn.heads import MlmHead
from plm.nn.transformer import layer_norm

# The encoder's shape fields this model has (init_from may be an encoder run: no decoder).
SHAPE_FIELDS = tuple(k for k in encoder_lib.SHAPE_FIELDS
                     if k not in ('num_segments', 'num_tasks'))


class Decoder(nn.Module):
  """Target embeddings + blocks with causal self- and cross-attention: [B, Lt, H]."""
  vocab_size: int
  layers: int
  hidden: int
  heads: int
  ff: int
  activation: str = 'gelu'
  dropout: float = 0.1
  attention_dropout: float = 0.1
  max_len: int = 512
  num_languages: int = 0
  positions: str = 'learned'
  post_ln: bool = True
  ln_eps: float = 1e-12
  remat: str = 'none'
  dtype: Any = jnp.float32
  attention: str = 'einsum'
  own_embeddings: bool = False  # False: the caller passes the encoder's (shared)

  def setup(self):
    if self.own_embeddings:
      self.embeddings = Embeddings(self.vocab_size, self.hidden, self.max_len, 0,
                                   self.num_languages, 0, self.positions)
    self.embed_ln = layer_norm(self.ln_eps, 'embed_ln') if self.post_ln else None
    self.embed_dropout = Dropout(self.dropout)
    self.blocks = encoder_lib.make_blocks(self, cross_attention=True)
    self.final_ln = None if self.post_ln else layer_norm(self.ln_eps, 'final_ln')

  def __call__(self, tokens, positions, mask, encoded, cross_mask, *, langs=None,
               embeddings=None, deterministic: bool = True, decode: bool = False):
    if tokens.shape[-1] > self.max_len:
      raise UserError(f'target length {tokens.shape[-1]} exceeds model.max_len={self.max_len}')
    embed = self.embeddings if self.own_embeddings else embeddings
    x = embed(tokens, positions, langs=langs)
    if self.embed_ln is not None:
      x = self.embed_ln(x)
    x = self.embed_dropout(x, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    for block in self.blocks:
      x = block(x, mask, encoded, cross_mask, deterministic, decode)
    return x if self.final_ln is None else self.final_ln(x)


class Seq2Seq(nn.Module):
  """Encoder + decoder + tied LM head: logits [B, Lt, V] (float32).

  `hidden` and `logits` are the two halves of `__call__` (for train.loss_chunk).
  Cached decoding (plm/decode/seq2seq.py): `decode(encoded, ..., decode=True)`
  once with the encoder output writes every layer's cross-attention keys/values
  to the 'cache' collection; later calls pass encoded=None and read them.
  """
  encoder: Encoder
  decoder: Decoder
  share_embeddings: bool = True  # the decoder uses the encoder's embedding tables

  def setup(self):
    self.lm_head = MlmHead(self.encoder.vocab_size, self.encoder.activation,
                           self.encoder.ln_eps, self.encoder.dtype)

  def __call__(self, src_tokens, src_positions, src_mask, tgt_tokens, tgt_positions, tgt_mask,
               cross_mask, src_langs=None, tgt_langs=None, deterministic: bool = True):
    return self.logits(self.hidden(src_tokens, src_positions, src_mask, tgt_tokens,
                                   tgt_positions, tgt_mask, cross_mask, src_langs, tgt_langs,
                                   deterministic))

  def hidden(self, src_tokens, src_positions, src_mask, tgt_tokens, tgt_positions, tgt_mask,
             cross_mask, src_langs=None, tgt_langs=None, deterministic: bool = True):
    """The decoder's states [B, Lt, H] (teacher forcing)."""
    encoded = self.encode(src_tokens, src_positions, src_mask, src_langs, deterministic)
    return self.decode(encoded, tgt_tokens, tgt_positions, tgt_mask, cross_mask, tgt_langs,
                       deterministic)

  def encode(self, src_tokens, src_positions, src_mask, src_langs=None,
             deterministic: bool = True):
    """The encoder's states [B, Ls, H]."""
    return self.encoder(src_tokens, src_positions, src_mask, langs=src_langs,
                        deterministic=deterministic)

  def decode(self, encoded, tgt_tokens, tgt_positions, tgt_mask, cross_mask, tgt_langs=None,
             deterministic: bool = True, decode: bool = False):
    """The decoder's states [B, Lt, H]; `decode` reads and writes the 'cache' collection."""
    return self.decoder(tgt_tokens, tgt_positions, tgt_mask, encoded, cross_mask,
                        langs=tgt_langs,
                        embeddings=self.encoder.embeddings if self.share_embeddings else None,
                        deterministic=deterministic, decode=decode)

  def sentence_vectors(self, tokens, langs=None, **options):
    """The encoder's sentence vectors [B, H] (Encoder.sentence_vectors)."""
    return self.encoder.sentence_vectors(tokens, langs, **options)

  def logits(self, x):
    """Vocabulary logits (float32) of decoder states [..., H]."""
    tied = self.encoder.embeddings if self.share_embeddings else self.decoder.embeddings
    return self.lm_head(x, tied.attend)


def config() -> ml_collections.ConfigDict:
  """The encoder's fields (plm/models/encoder.py) minus num_segments and num_tasks, plus:"""
  c = encoder_lib.config()
  del c['num_segments'], c['num_tasks']  # no token types or tasks: always 0
  c.name = 'seq2seq'
  c.decoder_layers = config_dict.placeholder(int)  # decoder blocks; unset = model.layers
  c.share_embeddings = True  # the decoder shares the encoder's token/position/language tables
  return c


def build(mc, vocab_size: int) -> Seq2Seq:
  fields = ml_collections.ConfigDict(mc.to_dict())
  fields.update(num_segments=0, num_tasks=0)
  enc = encoder_lib.build_encoder(fields, vocab_size)
  layers = enc.layers if mc.decoder_layers is None else mc.decoder_layers
  if layers < 1:
    raise UserError(f'model.decoder_layers={layers}: the decoder needs at least 1 block')
  same = ('vocab_size', 'hidden', 'heads', 'ff', 'activation', 'dropout', 'attention_dropout',
          'max_len', 'num_languages', 'positions', 'post_ln', 'ln_eps', 'remat', 'dtype',
          'attention')
  dec = Decoder(layers=layers, own_embeddings=not mc.share_embeddings,
                **{k: getattr(enc, k) for k in same})
  return Seq2Seq(enc, dec, mc.share_embeddings)


def init_from_encoder_lm(saved: dict, fresh: dict) -> dict:
  """`fresh` seq2seq params with an encoder_lm's (XLM's) put where the shapes match, as
  the XLM paper initialises MT: the encoder from the encoder, each decoder block's
  self-attention and feed-forward from the same-numbered encoder block, the decoder's
  embedding LayerNorm from the encoder's and the output head from the MLM head.
  Cross-attention (which XLM does not have) stays freshly initialised."""
  out = dict(fresh, encoder=saved['encoder'], lm_head=saved['mlm_head'])
  decoder = dict(fresh['decoder'])
  for name, block in fresh['decoder'].items():
    if name in ('embed_ln', 'final_ln') and name in saved['encoder']:
      decoder[name] = saved['encoder'][name]
    elif name.startswith('layer_'):
      if name not in saved['encoder']:
        raise UserError(f'the decoder has block {name} but the encoder_lm checkpoint has only '
                        f"{sum(k.startswith('layer_') for k in saved['encoder'])} blocks; "
                        'set model.decoder_layers to at most that')
      decoder[name] = {k: saved['encoder'][name].get(k, v) if not k.startswith('cross') else v
                       for k, v in block.items()}
  out['decoder'] = decoder
  return out
