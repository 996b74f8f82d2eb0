"""The accuracy metric: is_argmax equals argmax == target, ties included (first index wins)."""
import jax.numpy as jnp
import numpy as np

from plm.objectives import losses


def test_is_argmax_equals_argmax_with_ties():
  rng = np.random.RandomState(0)
  for _ in range(200):
    vocab = rng.randint(2, 9)
    logits = rng.randint(0, 3, (4, 5, vocab)).astype(np.float32)  # few values: many ties
    targets = rng.randint(0, vocab, (4, 5))
    got = np.asarray(losses.is_argmax(jnp.asarray(logits), jnp.asarray(targets)))
    np.testing.assert_array_equal(got, np.argmax(logits, -1) == targets)


def test_weighted_cross_entropy_counts_correct_by_weight():
  logits = jnp.asarray([[0.0, 2.0, 1.0], [3.0, 3.0, 0.0], [0.0, 0.0, 5.0]])
  targets = jnp.asarray([1, 1, 0])  # right; a tie lost to index 0; wrong
  sums = losses.weighted_cross_entropy(logits, targets, jnp.asarray([1.0, 1.0, 0.5]))
  assert float(sums['correct']) == 1.0 and float(sums['weight']) == 2.5
