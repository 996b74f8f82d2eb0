"""The jitted train step: accumulation, non-finite handling, the progress guard."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import train


def setup_and_state(config, tmp_path):
  s = train.setup(config, str(tmp_path))
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(0))
  return s, state


def one_step(config, tmp_path):
  s, state = setup_and_state(config, tmp_path)
  batch = s.train_ds.batch(0, config.train.batch_size, seed=config.seed)
  with jax.set_mesh(s.mesh):
    state, metrics = s.train_step(state, s.put(batch))
  return jax.device_get(state['params']), jax.device_get(metrics)


def test_accumulation_is_the_same_update_as_one_batch(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()  # dropout is 0 in :tiny
  params_1, metrics_1 = one_step(config, tmp_path)
  config.train.accum_steps = 4
  params_4, metrics_4 = one_step(config, tmp_path)
  np.testing.assert_allclose(metrics_1['loss'], metrics_4['loss'], rtol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(params_1), jax.tree_util.tree_leaves(params_4)):
    np.testing.assert_allclose(a, b, atol=2e-6)


def test_skip_nonfinite_keeps_state_and_counts(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  s, state = setup_and_state(config, tmp_path)
  from plm import models, objectives  # pylint: disable=g-import-not-at-top
  counts = s.train_ds.token_counts(s.tokenizer.vocab_size)
  objective = objectives.build(config.objective, s.tokenizer, counts)

  def poisoned(rng, batch):  # a NaN loss whenever the batch's first token is bos
    inputs, targets, weights = objective(rng, batch)
    return inputs, targets, weights * jnp.where(batch['tokens'][0, 0] == 2, jnp.nan, 1.0)

  model = models.build(config.model, s.tokenizer.vocab_size)
  config.optim.warmup_steps = 0  # lr > 0 from the first update
  step, _ = train.make_steps(model, poisoned, train.make_optimizer(config.optim), 1,
                             train.unigram_logp(counts, s.tokenizer), skip_nonfinite=True)
  step = jax.jit(step)
  batch = s.train_ds.batch(0, 8, seed=0)
  assert batch['tokens'][0, 0] == 2  # rows start with bos
  state = jax.device_get(state)
  after, metrics = step(state, batch)
  assert float(metrics['skipped']) == 1.0 and not np.isfinite(metrics['loss'])
  for a, b in zip(jax.tree_util.tree_leaves(after['params']),
                  jax.tree_util.tree_leaves(state['params'])):
    np.testing.assert_array_equal(a, b)
  assert int(after['step']) == 1  # the step still counts: the data moves on
  clean = dict(batch, tokens=np.where(batch['tokens'] == 2, 5, batch['tokens']))
  after, metrics = step(state, clean)
  assert float(metrics['skipped']) == 0.0 and np.isfinite(metrics['loss'])
  assert not np.array_equal(after['params']['mlm_head']['bias'], state['params']['mlm_head']['bias'])


def test_progress_stops_on_nonfinite_loss_naming_the_step():
  progress = train.Progress(0, 10, None)
  ok = dict(loss=1.0, accuracy=0.1, tokens=10.0, grad_norm=1.0, skipped=0.0)
  progress.add(1, ok)
  progress.add(2, dict(ok, loss=float('nan')))
  with pytest.raises(train.NonFiniteLossError, match=r'at step 2 \(batch 1 of the data order\)'):
    progress.flush(2)


@pytest.mark.parametrize('objective', ['mlm', 'clm'])
def test_model_without_language_embeddings_trains(tiny_config, tmp_path, objective):
  """BERT-style (no language embeddings): the language ids are not fed to the model."""
  config = tiny_config.copy_and_resolve_references()
  config.model.num_languages = 0
  config.objective.name = objective
  _, metrics = one_step(config, tmp_path)
  assert np.isfinite(metrics['loss']) and metrics['loss'] > 0


def test_train_step_compiles_once(tiny_config, tmp_path):
  """Every batch has the same shapes and dtypes: no recompilation after step 1."""
  config = tiny_config.copy_and_resolve_references()
  s, state = setup_and_state(config, tmp_path)
  with jax.set_mesh(s.mesh):
    for step in range(4):
      batch = s.train_ds.batch(step, config.train.batch_size, seed=config.seed)
      state, _ = s.train_step(state, s.put(batch))
  assert s.train_step._cache_size() == 1  # pylint: disable=protected-access
