"""Output heads."""
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from plm.nn import precision
from plm.nn.attention import dense_init
from plm.nn.transformer import ACTIVATIONS, layer_norm

P = nn.with_logical_partitioning


class MlmHead(nn.Module):
  """BERT's LM head: Dense -> activation -> LayerNorm -> tied decoder + bias.

  `decode_fn(x, dtype)` maps hidden states to vocabulary logits with the input
  embedding table (weight tying, as BERT and XLM), its product's operands in `dtype`.
  """
  vocab_size: int
  activation: str = 'gelu'
  ln_eps: float = 1e-12
  dtype: Any = jnp.float32  # the products' operand dtype (plm/nn/precision.py)

  @nn.compact
  def __call__(self, x: jax.Array, decode_fn: Callable[[jax.Array], jax.Array]) -> jax.Array:
    x = nn.Dense(x.shape[-1], dot_general=precision.dot_general(self.dtype), name='transform',
                 kernel_init=P(dense_init(), ('embed', 'mlp')),
                 bias_init=P(nn.initializers.zeros, ('mlp',)))(x)
    x = layer_norm(self.ln_eps, 'transform_ln')(ACTIVATIONS[self.activation](x))
    bias = self.param('bias', P(nn.initializers.zeros, ('vocab',)), (self.vocab_size,))
    return decode_fn(x, self.dtype) + bias
