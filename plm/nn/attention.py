"""Multi-head attention over an explicit mask, with an optional KV cache."""
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from plm.errors import UserError
from plm.nn import precision
from plm.nn.dropout import Dropout

Array = jax.Array
P = nn.with_logical_partitioning


def dense_init(std: float = 0.02):
  """BERT's initializer: truncated normal with std 0.02."""
  return nn.initializers.truncated_normal(std)


class HeadsDense(nn.Module):
  """A dense layer to or from [heads, head_dim], kernel kept 3-D.

  The kernel is 3-D ([embed, heads, kv] in, [heads, kv, embed] out) so logical
  axis names can shard heads; nn.DenseGeneral initialises a flattened 2-D
  kernel, which breaks 3-D names under a mesh. The product itself runs as one
  2-D matmul over the flattened (heads, kv) dims: with the 3-D einsum, XLA:CPU
  transposed every kernel and ran the weight gradients several times slower
  (profiled at BERT-Base, experiments/benchmarks/README.md).
  """
  features: tuple  # output feature dims: (heads, kv) into heads, (embed,) out of them
  axes: tuple  # logical names of the kernel's 3 dims
  dtype: Any = jnp.float32  # operand dtype of the product (plm/nn/precision.py); out float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    n_in = 3 - len(self.features)  # input dims contracted: 1 (embed) or 2 (heads, kv)
    kernel_shape = x.shape[x.ndim - n_in:] + tuple(self.features)
    bias = self.param('bias', P(nn.initializers.zeros, self.axes[n_in:]), self.features,
                      jnp.float32)
    lead = x.shape[:x.ndim - n_in]
    flat_in = math.prod(kernel_shape[:n_in])
    kernel = self.param('kernel', P(dense_init(), self.axes), kernel_shape, jnp.float32)
    y = precision.matmul(x.reshape(lead + (flat_in,)), kernel.reshape(flat_in, -1), self.dtype)
    return y.reshape(lead + tuple(self.features)) + bias


IMPLEMENTATIONS = ('einsum', 'xla', 'cudnn')


class MultiHeadAttention(nn.Module):
  """Scaled dot-product attention; the mask is an input, never built here.

  The mask is bool `[batch, 1, q_len, kv_len]` from plm/masks.py (True = may
  attend). A query row with no allowed key gets uniform weights instead of NaN;
  such rows are padding and carry zero loss weight.

  `implementation` 'einsum' is plm's own softmax(QK^T)V (with attention
  dropout); 'xla' and 'cudnn' call `jax.nn.dot_product_attention` with the same
  mask ('cudnn' is fused flash attention on NVIDIA GPUs, bf16/fp16 only). The
  fused kernels have no attention dropout, so training with them needs
  dropout_rate=0 (evaluation does not).
  """
  num_heads: int
  head_dim: int
  dropout_rate: float = 0.0  # dropout on attention probabilities
  dtype: Any = jnp.float32  # the contractions' operand dtype (plm/nn/precision.py)
  implementation: str = 'einsum'  # one of IMPLEMENTATIONS
  # the four projections' module, called as dense(features, axes, dtype, name=): None =
  # HeadsDense (float kernels); the model chooses (plm/nn/quant.py dense_class)
  dense: Any = None
  # x_kv is fixed while decoding (an encoder output): with decode, its keys and
  # values are computed once, on the call that passes x_kv, and read back from
  # the cache on the calls that pass x_kv=None.
  static_kv: bool = False

  @nn.compact
  def __call__(self, x_q: Array, x_kv: Array | None, mask: Array | None, *,
               deterministic: bool = True, decode: bool = False) -> Array:
    features = x_q.shape[-1]
    shape = (self.num_heads, self.head_dim)
    dense = self.dense or HeadsDense
    def proj(name, x):
      return dense(shape, ('embed', 'heads', 'kv'), self.dtype, name=name)(x)
    q = proj('query', x_q)
    if decode and self.static_kv:
      k, v = self._static_cache(proj, x_kv)
    else:
      k, v = proj('key', x_kv), proj('value', x_kv)
      if decode:
        k, v, mask = self._update_cache(k, v, mask)
    if self.implementation == 'einsum':
      q = q / jnp.sqrt(self.head_dim).astype(q.dtype)
      logits = precision.einsum('bqhd,bkhd->bhqk', q, k, self.dtype)
      if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
      probs = jax.nn.softmax(logits, axis=-1)
      # read by distillation (apply with mutable=['intermediates']); a no-op otherwise
      self.sow('intermediates', 'attention_probs', probs)
      probs = Dropout(self.dropout_rate)(probs, deterministic=deterministic)
      out = precision.einsum('bhqk,bkhd->bqhd', probs, v, self.dtype)
    else:
      out = self._fused(q, k, v, mask, deterministic)
    return dense((features,), ('heads', 'kv', 'embed'), self.dtype, name='out')(out)

  def _fused(self, q: Array, k: Array, v: Array, mask: Array | None,
             deterministic: bool) -> Array:
    if self.implementation not in IMPLEMENTATIONS:
      raise UserError(f'model.attention={self.implementation!r} is unknown; use one of '
                      f'{IMPLEMENTATIONS}')
    if self.dropout_rate and not deterministic:
      raise UserError(f'model.attention={self.implementation!r} has no attention dropout; set '
                      f'model.attention_dropout=0 (it is {self.dropout_rate}) or use '
                      "model.attention='einsum'")
    # the fused kernels take one dtype throughout (cudnn: bf16/fp16 only)
    q, k, v = (t.astype(self.dtype) for t in (q, k, v))
    return jax.nn.dot_product_attention(q, k, v, mask=mask,
                                        implementation=self.implementation).astype(jnp.float32)

  def _update_cache(self, k: Array, v: Array, mask: Array | None):
    """Writes this step's keys/values at `cache_index`; attends to the prefix.

    At init (no cache yet) the call shapes the cache from the full-length
    inputs; each later call feeds one position. The caller's mask is
    `[batch, 1, 1, max_len]` for the current position (or None: the prefix).
    """
    initialized = self.has_variable('cache', 'cached_key')
    cached_k = self.variable('cache', 'cached_key', jnp.zeros, k.shape, k.dtype)
    cached_v = self.variable('cache', 'cached_value', jnp.zeros, v.shape, v.dtype)
    index = self.variable('cache', 'cache_index', lambda: jnp.array(0, jnp.int32))
    if not initialized:
      return k, v, mask
    i = index.value
    length = cached_k.value.shape[1]
    cached_k.value = jax.lax.dynamic_update_slice_in_dim(cached_k.value, k, i, 1)
    cached_v.value = jax.lax.dynamic_update_slice_in_dim(cached_v.value, v, i, 1)
    index.value = i + k.shape[1]
    prefix = (jnp.arange(length) < i + k.shape[1])[None, None, None, :]
    mask = prefix if mask is None else jnp.logical_and(mask, prefix)
    return cached_k.value, cached_v.value, mask

  def _static_cache(self, proj, x_kv: Array | None):
    """Keys/values of a fixed input: projected and stored once, then only read."""
    if x_kv is None:
      if not self.has_variable('cache', 'cached_key'):
        raise UserError('cross-attention has no cached keys: the first decode call must pass '
                        'the encoder output (a prefill)')
      return self.get_variable('cache', 'cached_key'), self.get_variable('cache', 'cached_value')
    k, v = proj('key', x_kv), proj('value', x_kv)
    self.put_variable('cache', 'cached_key', k)
    self.put_variable('cache', 'cached_value', v)
    return k, v
