"""Input embeddings: token + position + optional segment / language / task."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from plm.errors import UserError
from plm.nn import precision
from plm.nn.attention import dense_init

P = nn.with_logical_partitioning


def sinusoidal(max_len: int, dim: int) -> np.ndarray:
  """Fixed sin/cos position table [max_len, dim] (Vaswani et al., 2017)."""
  pos = np.arange(max_len)[:, None]
  inv = np.exp(-np.log(10000.0) * np.arange(0, dim, 2) / dim)
  table = np.zeros((max_len, dim), np.float32)
  table[:, 0::2] = np.sin(pos * inv)
  table[:, 1::2] = np.cos(pos * inv)[:, :dim // 2]
  return table


def embed(num: int, dim: int, name: str, axis: str = 'vocab') -> nn.Embed:
  return nn.Embed(num, dim, name=name, embedding_init=P(dense_init(), (axis, 'embed')))


class Embeddings(nn.Module):
  """Sum of token, position and the optional type embeddings.

  A table with size 0 is absent (XLM has languages but no segments, BERT the
  reverse). `token_embed` is exposed so an output head can tie to it.
  """
  vocab_size: int
  hidden: int
  max_len: int  # longest position the model accepts
  num_segments: int = 2  # BERT token types (sentence A / B); 0 = none
  num_languages: int = 0  # XLM language embeddings; 0 = none
  num_tasks: int = 0  # ERNIE 2.0 task embeddings; 0 = none
  positions: str = 'learned'  # 'learned' or 'sinusoidal'

  def setup(self):
    self.token_embed = embed(self.vocab_size, self.hidden, 'token')
    if self.positions == 'learned':
      self.position_embed = embed(self.max_len, self.hidden, 'position', 'pos')
    elif self.positions != 'sinusoidal':
      raise UserError(f"model.positions={self.positions!r}: use 'learned' or 'sinusoidal'")
    for field, name in ((self.num_segments, 'segment'), (self.num_languages, 'language'),
                        (self.num_tasks, 'task')):
      if field:
        setattr(self, f'{name}_embed', embed(field, self.hidden, name, 'types'))

  def __call__(self, tokens, positions, *, token_types=None, langs=None, tasks=None):
    x = self.token_embed(tokens)
    if self.positions == 'learned':
      x += self.position_embed(positions)
    else:
      x += jnp.asarray(sinusoidal(self.max_len, self.hidden))[positions]
    for ids, name, field in ((token_types, 'segment', 'num_segments'),
                             (langs, 'language', 'num_languages'), (tasks, 'task', 'num_tasks')):
      if getattr(self, field):
        ids = jnp.zeros_like(tokens) if ids is None else ids
        x += getattr(self, f'{name}_embed')(ids)
      elif ids is not None:
        raise UserError(f'{name} ids were given but the model has no {name} embeddings: '
                        f'set model.{field} > 0 in the config')
    return x

  def attend(self, x: jax.Array, dtype=jnp.float32) -> jax.Array:
    """Float32 logits against the token table (tied output embedding); the product's
    operands in `dtype` (plm/nn/precision.py)."""
    if not precision.is_mixed(dtype):
      return self.token_embed.attend(x)
    table = self.token_embed.embedding
    logits = precision.einsum('nh,vh->nv', x.reshape(-1, x.shape[-1]), table, dtype)
    return logits.reshape(x.shape[:-1] + (table.shape[0],))
