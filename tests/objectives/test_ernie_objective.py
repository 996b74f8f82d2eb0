"""ERNIE's dEA noise and candidates (plm/objectives/ernie.py)."""
import jax
import jax.numpy as jnp
import numpy as np

from plm.objectives import ernie


def test_dea_noise_shares_on_a_large_batch():
  rng = np.random.default_rng(0)
  entities = rng.integers(1, 50_001, (256, 512)) * (rng.random((256, 512)) < 0.5)
  aligned = entities > 0
  noised = np.asarray(ernie.noise_entities(jax.random.PRNGKey(0), jnp.asarray(entities), 50_000))
  assert not noised[~aligned].any()  # a token without an entity never gets one
  n = aligned.sum()  # ~65k aligned pairs: the shares' std is < 0.2 points
  dropped = (noised == 0)[aligned].mean()
  kept = (noised == entities)[aligned].mean()
  replaced = ((noised != entities) & (noised > 0))[aligned].mean()
  assert n > 60_000
  assert abs(dropped - 0.15) < 0.006 and abs(replaced - 0.05) < 0.004 and abs(kept - 0.80) < 0.006
  assert noised.max() <= 50_000


def test_candidates_are_the_batchs_distinct_entities_and_labels_index_them():
  entities = jnp.array([[0, 7, 3, 0], [3, 0, 0, 12]])
  candidates, labels, real = ernie.candidates_and_labels(entities, num_entities=20)
  assert np.asarray(candidates)[np.asarray(real)].tolist() == [3, 7, 12]
  aligned = np.asarray(entities) > 0
  np.testing.assert_array_equal(np.asarray(candidates)[np.asarray(labels)][aligned],
                                np.asarray(entities)[aligned])


def test_entity_table_has_a_zero_row_for_no_entity():
  table = ernie.entity_table(np.ones((4, 3), np.float32))
  assert table.shape == (5, 3) and not table[0].any() and table[1:].all()
