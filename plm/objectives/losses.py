"""Weighted losses and metrics; every objective's targets come with weights."""
import jax.numpy as jnp
import optax


def weighted_cross_entropy(logits, targets, weights):
  """Returns sums (loss, correct, weight) so callers can average across batches."""
  losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return dict(loss=jnp.sum(losses * weights), correct=jnp.sum(correct * weights),
              weight=jnp.sum(weights))
