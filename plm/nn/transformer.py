"""Transformer block: attention + feed-forward, post-LN (BERT/XLM) or pre-LN."""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from plm.nn import precision
from plm.nn.attention import MultiHeadAttention, dense_init
from plm.nn.dropout import Dropout

P = nn.with_logical_partitioning
ACTIVATIONS = {'gelu': lambda x: nn.gelu(x, approximate=False),  # BERT's erf GELU
               'gelu_tanh': nn.gelu, 'relu': nn.relu}


def layer_norm(eps: float, name: str) -> nn.LayerNorm:
  """LayerNorm in float32 whatever model.dtype is (plm/nn/precision.py)."""
  return nn.LayerNorm(epsilon=eps, dtype=jnp.float32, name=name,
                      scale_init=P(nn.initializers.ones, ('embed',)),
                      bias_init=P(nn.initializers.zeros, ('embed',)))


class FeedForward(nn.Module):
  """Position-wise MLP: Dense(ff) -> activation -> Dense(hidden). As in BERT, no dropout
  inside; the block drops the sublayer output."""
  ff_dim: int
  activation: str = 'gelu'  # key of ACTIVATIONS
  dtype: Any = jnp.float32  # the products' operand dtype (plm/nn/precision.py)
  dense: Any = None  # the kernels' module (plm/nn/quant.py dense_class); None = nn.Dense

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
    def dense(features, axes, name):
      if self.dense:
        return self.dense((features,), axes, self.dtype, name=name)
      return nn.Dense(features, dot_general=precision.dot_general(self.dtype), name=name,
                      kernel_init=P(dense_init(), axes),
                      bias_init=P(nn.initializers.zeros, axes[1:]))
    h = dense(self.ff_dim, ('embed', 'mlp'), 'wi')(x)
    h = ACTIVATIONS[self.activation](h)
    h = nn.with_logical_constraint(h, ('batch', 'length', 'mlp'))
    return dense(x.shape[-1], ('mlp', 'embed'), 'wo')(h)


class TransformerBlock(nn.Module):
  """Self-attention (and optional cross-attention) plus feed-forward.

  post_ln=True is BERT/XLM: x = LN(x + sublayer(x)). post_ln=False is pre-LN:
  x = x + sublayer(LN(x)), stabler for deep stacks.
  """
  num_heads: int
  head_dim: int
  ff_dim: int
  activation: str = 'gelu'
  dropout_rate: float = 0.1  # on sublayer outputs
  attention_dropout_rate: float = 0.1
  post_ln: bool = True
  ln_eps: float = 1e-12  # BERT's LayerNorm epsilon
  cross_attention: bool = False  # decoder blocks attend to an encoder output
  dtype: Any = jnp.float32  # the contractions' operand dtype (plm/nn/precision.py)
  attention: str = 'einsum'  # MultiHeadAttention.implementation: einsum | xla | cudnn
  dense: Any = None  # MultiHeadAttention.dense and FeedForward.dense: None = float kernels

  @nn.compact
  # Positional arguments, so nn.remat can mark `deterministic` static (self = 0).
  def __call__(self, x, mask, encoded=None, cross_mask=None,
               deterministic: bool = True, decode: bool = False):
    def sublayer(x, fn, name):
      h = layer_norm(self.ln_eps, f'{name}_ln')(x) if not self.post_ln else x
      h = Dropout(self.dropout_rate)(fn(h), deterministic=deterministic)
      x = x + h
      if self.post_ln:
        x = layer_norm(self.ln_eps, f'{name}_ln')(x)
      return nn.with_logical_constraint(x, ('batch', 'length', 'embed'))

    attn = lambda name, static_kv=False: MultiHeadAttention(
        self.num_heads, self.head_dim, self.attention_dropout_rate, self.dtype, self.attention,
        self.dense, static_kv, name=name)
    x = sublayer(x, lambda h: attn('self_attention')(
        h, h, mask, deterministic=deterministic, decode=decode), 'self_attention')
    if self.cross_attention:
      # With decode, `encoded` is given once (the prefill) and None at each step after.
      x = sublayer(x, lambda h: attn('cross_attention', static_kv=True)(
          h, encoded, cross_mask, deterministic=deterministic, decode=decode), 'cross_attention')
    ff = FeedForward(self.ff_dim, self.activation, self.dtype, self.dense,
                     name='mlp')
    return sublayer(x, lambda h: ff(h, deterministic=deterministic), 'mlp')
