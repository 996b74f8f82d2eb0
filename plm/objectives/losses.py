"""Weighted losses and metrics; every objective's targets come with weights."""
import jax
import jax.numpy as jnp
import optax

from plm.errors import UserError


def weighted_cross_entropy(logits, targets, weights):
  """Returns sums (loss, correct, weight) so callers can average across batches."""
  losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  correct = is_argmax(logits, targets).astype(jnp.float32)
  return dict(loss=jnp.sum(losses * weights), correct=jnp.sum(correct * weights),
              weight=jnp.sum(weights))


def is_argmax(logits, targets):
  """`jnp.argmax(logits, -1) == targets` (ties go to the first index, as argmax does),
  from elementwise compares and reductions: XLA:CPU does not vectorise argmax over a
  vocabulary, which cost ~150 ms of a LASER step (experiments/benchmarks/laser_throughput.py)."""
  row_max = jnp.max(logits, -1, keepdims=True)
  hit = jnp.take_along_axis(logits, targets[..., None], -1) >= row_max
  earlier = jnp.arange(logits.shape[-1]) < targets[..., None]
  return hit[..., 0] & ~jnp.any((logits == row_max) & earlier, -1)


def chunked_cross_entropy(logits_fn, hidden, targets, weights, chunk: int):
  """weighted_cross_entropy of `logits_fn(hidden)`, `chunk` positions at a time.

  hidden is [B, L, H] (targets, weights [B, L]). Each chunk's logits are
  recomputed in the backward pass (jax.checkpoint), so only a [B, chunk, vocab]
  block of logits ever exists instead of [B, L, vocab]: the memory-efficient
  cross-entropy for large vocabularies and every-position objectives (CLM,
  seq2seq). Chunks run over positions, so a batch sharded over devices stays so.
  """
  length = hidden.shape[1]
  if chunk <= 0 or length % chunk:
    raise UserError(f'train.loss_chunk={chunk} must be > 0 and divide the {length} predicted '
                    'positions per row; pick a divisor (or 0 for no chunking)')
  split = lambda x: jnp.moveaxis(x.reshape(x.shape[:1] + (length // chunk, chunk) + x.shape[2:]),
                                 1, 0)

  @jax.checkpoint
  def one(xs):
    h, t, w = xs
    return weighted_cross_entropy(logits_fn(h), t, w)

  sums = jax.lax.map(one, (split(hidden), split(targets), split(weights)))
  return jax.tree_util.tree_map(lambda s: jnp.sum(s, 0), sums)
