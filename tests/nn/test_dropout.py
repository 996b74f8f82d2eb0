"""plm.nn.dropout: rate, independence per element, scaling, and the no-op cases."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm.nn.dropout import Dropout, keep_mask


def apply(rate, x, key=0, deterministic=False):
  return Dropout(rate).apply({}, x, deterministic=deterministic,
                             rngs={'dropout': jax.random.PRNGKey(key)})


@pytest.mark.parametrize('rate', [0.1, 0.5])
def test_drop_fraction_is_the_rate_in_both_halves_of_each_word(rate):
  keep = np.asarray(keep_mask(jax.random.PRNGKey(3), rate, (1000, 1000)))
  # 10^6 draws: the fraction's standard deviation is 5e-4 at most
  assert abs(1 - keep.mean() - rate) < 3e-3
  # even and odd elements come from the low and high 16 bits of one word: both random
  assert abs(1 - keep[:, 0::2].mean() - rate) < 4e-3
  assert abs(1 - keep[:, 1::2].mean() - rate) < 4e-3
  # neighbours (one word's two halves) are independent: P(both dropped) = rate^2
  both = (~keep[:, 0::2] & ~keep[:, 1::2]).mean()
  assert abs(both - rate * rate) < 3e-3


def test_masks_differ_per_example_and_head_and_per_key():
  keep = np.asarray(keep_mask(jax.random.PRNGKey(0), 0.1, (4, 3, 16, 16)))
  flat = keep.reshape(12, -1)
  assert len({row.tobytes() for row in flat}) == 12  # no mask shared across batch/heads
  other = np.asarray(keep_mask(jax.random.PRNGKey(1), 0.1, (4, 3, 16, 16)))
  assert (keep != other).any()


def test_kept_values_are_scaled_and_dropped_ones_are_zero():
  x = jnp.arange(1, 1 + 2 * 999, dtype=jnp.float32).reshape(2, 999)  # odd size: a half word
  y = np.asarray(apply(0.25, x))
  kept = y != 0
  assert 0 < kept.mean() < 1
  np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / 0.75, rtol=1e-6)
  # the same key gives the same mask: a resumed step redraws it exactly
  np.testing.assert_array_equal(y, np.asarray(apply(0.25, x)))


def test_deterministic_or_zero_rate_is_the_identity_and_bad_rates_fail():
  x = jnp.ones((3, 5))
  np.testing.assert_array_equal(apply(0.1, x, deterministic=True), x)
  np.testing.assert_array_equal(apply(0.0, x), x)
  with pytest.raises(ValueError, match='must lie in'):
    apply(1.0, x)


def test_bfloat16_stays_bfloat16():
  y = apply(0.1, jnp.ones((8, 8), jnp.bfloat16))
  assert y.dtype == jnp.bfloat16
