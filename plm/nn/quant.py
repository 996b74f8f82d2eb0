"""The int8 dense layer: int8 weights with a float32 scale per output feature.

Written by plm/compress/quantize.py (post-training, symmetric absmax / 127 per output
feature); at run time the activations are quantized per row and the product is an int8
x int8 -> int32 matmul. The attention projections and the feed-forward layers build their
kernels with `QuantDense` when the model passes it as their `dense` (plm/nn/attention.py,
plm/nn/transformer.py); `dense_class(mode)` is that choice.
"""
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from plm.errors import UserError

Array = jax.Array
P = nn.with_logical_partitioning
MODES = ('int8',)  # model.quant: what plm/compress/quantize.py writes


def int8_matmul(x: Array, kernel: Array, scale: Array) -> Array:
  """x [N, in] (float) @ the int8 kernel [in, out] dequantized by `scale` [out], in float32.

  x is quantized per row (absmax / 127, symmetric), so the product itself is an int8 x
  int8 -> int32 matmul; the two scales are applied to its output.
  """
  x = x.astype(jnp.float32)
  x_scale = jnp.maximum(jnp.max(jnp.abs(x), axis=-1, keepdims=True), 1e-12) / 127.0
  xq = jnp.clip(jnp.round(x / x_scale), -127, 127).astype(jnp.int8)
  acc = jax.lax.dot_general(xq, kernel, (((x.ndim - 1,), (0,)), ((), ())),
                            preferred_element_type=jnp.int32)
  return acc.astype(jnp.float32) * x_scale * scale


class QuantDense(nn.Module):
  """A dense layer with an int8 `kernel`, a float32 `scale` and `bias` per output feature.

  The kernel keeps the float layer's shape and logical axes: its leading
  len(axes) - len(features) dims are contracted with x's trailing ones (2-D for the
  feed-forward layers, 3-D to or from [heads, head_dim] for attention).
  """
  features: tuple  # output feature dims
  axes: tuple  # logical names of the kernel's dims
  # the float layers' operand dtype (HeadsDense's): unused, the product runs in int8 /
  # int32 and returns float32 (plm/nn/precision.py)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    n_in = len(self.axes) - len(self.features)
    kernel_shape = x.shape[x.ndim - n_in:] + tuple(self.features)
    kernel = self.param('kernel', P(nn.initializers.zeros_init(), self.axes), kernel_shape,
                        jnp.int8)
    scale = self.param('scale', P(nn.initializers.ones, self.axes[n_in:]), self.features,
                       jnp.float32)
    bias = self.param('bias', P(nn.initializers.zeros, self.axes[n_in:]), self.features,
                      jnp.float32)
    lead = x.shape[:x.ndim - n_in]
    flat_in = math.prod(kernel_shape[:n_in])
    y = int8_matmul(x.reshape(lead + (flat_in,)), kernel.reshape(flat_in, -1),
                    scale.reshape(-1))
    return y.reshape(lead + tuple(self.features)) + bias


def dense_class(mode: str):
  """The dense layer of model.quant=`mode`: None (float kernels) for '', else QuantDense."""
  if not mode:
    return None
  if mode not in MODES:
    raise UserError(f'model.quant={mode!r} is unknown; use one of {MODES} or \'\'')
  return QuantDense
