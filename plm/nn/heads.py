"""Output heads."""
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from plm.nn.attention import dense_init
from plm.nn.transformer import ACTIVATIONS, layer_norm

P = nn.with_logical_partitioning


class MlmHead(nn.Module):
  """BERT's LM head: Dense -> activation -> LayerNorm -> tied decoder + bias.

  `decode_fn` maps hidden states to vocabulary logits with the input embedding
  table (weight tying, as BERT and XLM).
  """
  vocab_size: int
  activation: str = 'gelu'
  ln_eps: float = 1e-12
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, decode_fn: Callable[[jax.Array], jax.Array]) -> jax.Array:
    x = nn.Dense(x.shape[-1], dtype=self.dtype, name='transform',
                 kernel_init=P(dense_init(), ('embed', 'mlp')),
                 bias_init=P(nn.initializers.zeros, ('mlp',)))(x)
    x = layer_norm(self.ln_eps, 'transform_ln', self.dtype)(ACTIVATIONS[self.activation](x))
    bias = self.param('bias', P(nn.initializers.zeros, ('vocab',)), (self.vocab_size,))
    return decode_fn(x).astype(jnp.float32) + bias
