"""Masked language modelling (BERT, XLM): pick 15% of tokens, corrupt 80/10/10.

Runs inside the jitted step with an explicit key. Exactly `round(rate * n)`
(stochastically rounded) eligible tokens per row are picked by Gumbel top-k, so
XLM's frequency-smoothed sampling is the same code with non-uniform log-weights.
"""
import jax
import jax.numpy as jnp
import numpy as np

from plm import masks


def smoothed_weights(token_counts: np.ndarray, smoothing: float) -> np.ndarray:
  """XLM's masking weights: p(token) ∝ count^-smoothing (0 = uniform, XLM uses 0.5)."""
  return np.power(np.maximum(token_counts, 1).astype(np.float64), -smoothing).astype(np.float32)


def pick_positions(rng, eligible, num_predictions: int, rate: float, log_weights=None):
  """Samples `rate` of the eligible positions per row, without replacement.

  Returns (positions [B, P], weights [B, P]): the first `n` slots of each row
  are real picks (weight 1), the rest are padding slots (weight 0).
  """
  k_round, k_gumbel = jax.random.split(rng)
  n_eligible = eligible.sum(-1)
  n_pick = jnp.floor(rate * n_eligible + jax.random.uniform(k_round, n_eligible.shape))
  n_pick = jnp.minimum(n_pick, num_predictions)
  scores = jax.random.gumbel(k_gumbel, eligible.shape)
  if log_weights is not None:
    scores = scores + log_weights
  scores = jnp.where(eligible, scores, -jnp.inf)
  _, positions = jax.lax.top_k(scores, num_predictions)
  picked = jnp.take_along_axis(eligible, positions, axis=1)
  weights = (jnp.arange(num_predictions)[None, :] < n_pick[:, None]) & picked
  return positions.astype(jnp.int32), weights


def corrupt(rng, targets, weights, *, mask_id, vocab_size, first_normal_id,
            mask_prob=0.8, random_prob=0.1):
  """BERT's 80/10/10: [MASK], a random (non-special) token, or unchanged."""
  k_choice, k_random = jax.random.split(rng)
  u = jax.random.uniform(k_choice, targets.shape)
  random_tokens = jax.random.randint(k_random, targets.shape, first_normal_id, vocab_size)
  new = jnp.where(u < mask_prob, mask_id,
                  jnp.where(u < mask_prob + random_prob, random_tokens, targets))
  return jnp.where(weights, new, targets)



def predict_masked(rng, tokens, masked, num_predictions: int, **corrupt_kwargs):
  """Masked positions [B, L] (bool) into `num_predictions` slots per row, masked positions
  first and in order (weight-0 padding slots after), their tokens corrupted by `corrupt`.

  Returns (corrupted tokens [B, L], positions, targets, weights [B, num_predictions]).
  """
  length = tokens.shape[1]
  _, positions = jax.lax.top_k(jnp.where(masked, length - jnp.arange(length), 0),
                               num_predictions)
  weights = jnp.take_along_axis(masked, positions, axis=1)
  targets = jnp.take_along_axis(tokens, positions, axis=1)
  replaced = corrupt(rng, targets, weights, **corrupt_kwargs)
  rows = jnp.arange(tokens.shape[0])[:, None]
  return (tokens.at[rows, positions].set(replaced), positions.astype(jnp.int32), targets,
          weights.astype(jnp.float32))

def make(*, mask_id: int, vocab_size: int, special_ids, num_predictions: int,
         rate: float = 0.15, mask_prob: float = 0.8, random_prob: float = 0.1,
         token_weights: np.ndarray | None = None):
  """Returns `mlm(rng, batch) -> (inputs, targets, weights)` for packed rows."""
  special = jnp.asarray(sorted(special_ids), jnp.int32)
  first_normal_id = int(max(special_ids)) + 1
  log_w = None if token_weights is None else jnp.log(jnp.asarray(token_weights))

  def mlm(rng, batch):
    tokens = batch['tokens']
    k_pick, k_corrupt = jax.random.split(rng)
    eligible = ~jnp.isin(tokens, special)
    positions, weights = pick_positions(
        k_pick, eligible, num_predictions, rate, None if log_w is None else log_w[tokens])
    targets = jnp.take_along_axis(tokens, positions, axis=1)
    replaced = corrupt(k_corrupt, targets, weights, mask_id=mask_id, vocab_size=vocab_size,
                       first_normal_id=first_normal_id, mask_prob=mask_prob,
                       random_prob=random_prob)
    rows = jnp.arange(tokens.shape[0])[:, None]
    inputs = dict(tokens=tokens.at[rows, positions].set(replaced),
                  positions=batch['positions'],
                  mask=masks.packed_mask(batch['segment_ids']),
                  predict_positions=positions)
    if 'langs' in batch:
      inputs['langs'] = batch['langs']
    return inputs, targets, weights.astype(jnp.float32)

  return mlm
