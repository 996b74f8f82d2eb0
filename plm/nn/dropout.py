"""Dropout that draws 16 random bits per element instead of 32.

flax's `nn.Dropout` compares one 32-bit uniform per element with the keep
probability. Threefry makes 32 bits per hash, so splitting each 32-bit word into
two 16-bit draws halves the PRNG work; at BERT-Base on CPU the masks (one per
example and head for attention) were about 6% of a training step
(experiments/benchmarks/README.md). The drop probability is the rate rounded to a
multiple of 2^-16 (0.1 becomes 0.100006). Otherwise it is `nn.Dropout`: same
`rng_collection`, same inverted scaling, a no-op when deterministic.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from plm.errors import UserError

BITS = 16


def keep_mask(key: jax.Array, rate: float, shape: tuple) -> jax.Array:
  """bool `shape`, True with probability 1 - round(rate * 2^16) / 2^16, per element."""
  size = math.prod(shape)
  words = jax.random.bits(key, (-(-size // 2),), jnp.uint32)
  halves = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[:size]
  return halves.reshape(shape) >= round(rate * 2**BITS)


class Dropout(nn.Module):
  """Inverted dropout, independent per element (so per example and head)."""
  rate: float
  rng_collection: str = 'dropout'

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    if not 0.0 < self.rate < 1.0:
      raise UserError(f'dropout rate {self.rate} must lie in [0, 1)')
    keep = keep_mask(self.make_rng(self.rng_collection), self.rate, x.shape)
    # a multiply, not a divide: XLA keeps `x / 0.9` a division, in the backward pass too
    scale = jnp.asarray(1.0 / (1.0 - self.rate), x.dtype)
    return jnp.where(keep, x * scale, jnp.zeros((), x.dtype))
