"""The jitted train step: accumulation, non-finite handling, the progress guard."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from plm import progress, run, train
from plm import workdir as workdir_lib
from plm.jobs import pretrain

pytestmark = pytest.mark.model


def build(config):
  """(task, tokenizer, Setup) of the pre-training job on `config` (resolved here)."""
  config = run.resolve(config)
  tokenizer = workdir_lib.load_tokenizer(config, '')
  task = pretrain.make_task(config, tokenizer)
  return task, tokenizer, train.setup(config, task)


def setup_and_state(config):
  task, tokenizer, s = build(config)
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(0), s.extras)
  return task, tokenizer, s, state


def one_step(config):
  task, _, s, state = setup_and_state(config)
  batch = task.train_rows.batch(0, config.train.batch_size, seed=config.seed)
  with jax.set_mesh(s.mesh):
    state, metrics = s.train_step(state, s.extras, s.put(batch))
  return jax.device_get(state['params']), jax.device_get(metrics)


def test_accumulation_is_the_same_update_as_one_batch(tiny_config):
  config = tiny_config.copy_and_resolve_references()  # dropout is 0 in :tiny
  params_1, metrics_1 = one_step(config)
  config.train.accum_steps = 4
  params_4, metrics_4 = one_step(config)
  for key in ('loss', 'accuracy', 'mlm/loss', 'mlm/accuracy', 'grad_norm', 'tokens'):
    np.testing.assert_allclose(metrics_1[key], metrics_4[key], rtol=1e-6, err_msg=key)
  for a, b in zip(jax.tree_util.tree_leaves(params_1), jax.tree_util.tree_leaves(params_4)):
    np.testing.assert_allclose(a, b, atol=2e-6)


def test_skip_nonfinite_keeps_state_and_counts(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  task, tokenizer, _, state = setup_and_state(config)
  objective = task.objective
  assert objective.heads == ('mlm',)

  def poisoned(rng, batch, extras):  # a NaN loss whenever the batch's first token is bos
    inputs, targets = objective.prepare(rng, batch, extras)
    nan = jnp.where(batch['tokens'][0, 0] == tokenizer.bos_id, jnp.nan, 1.0)
    return inputs, {'mlm': dict(targets['mlm'], weights=targets['mlm']['weights'] * nan)}

  config.optim.warmup_steps = 0  # lr > 0 from the first update
  step, _ = train.make_steps(task.model, objective._replace(prepare=poisoned),
                             train.make_optimizer(config.optim), 1, {'mlm': 1.0},
                             skip_nonfinite=True)
  step = jax.jit(step)
  batch = task.train_rows.batch(0, 8, seed=0)
  assert batch['tokens'][0, 0] == tokenizer.bos_id  # rows start with bos
  state = jax.device_get(state)
  after, metrics = step(state, {}, batch)
  assert float(metrics['skipped']) == 1.0 and not np.isfinite(metrics['loss'])
  for a, b in zip(jax.tree_util.tree_leaves((after['params'], after['opt_state'])),
                  jax.tree_util.tree_leaves((state['params'], state['opt_state']))):
    np.testing.assert_array_equal(a, b)
  assert int(after['step']) == 1  # the step still counts: the data moves on
  clean = dict(batch, tokens=np.where(batch['tokens'] == tokenizer.bos_id, 5, batch['tokens']))
  after, metrics = step(state, {}, clean)
  assert float(metrics['skipped']) == 0.0 and np.isfinite(metrics['loss'])
  assert not np.array_equal(after['params']['mlm_head']['bias'], state['params']['mlm_head']['bias'])


def test_progress_stops_on_nonfinite_loss_naming_the_step():
  assert train.NonFiniteLossError is progress.NonFiniteLossError
  bar = progress.Progress(0, 10, None)
  ok = dict(loss=1.0, accuracy=0.1, tokens=10.0, grad_norm=1.0, skipped=0.0)
  bar.add(1, ok)
  bar.flush(1)  # a finite loss passes
  bar.add(2, ok)
  bar.add(3, dict(ok, loss=float('nan')))
  with pytest.raises(train.NonFiniteLossError, match=r'at step 3 \(batch 2 of the data order\)'):
    bar.flush(3)
  skipping = progress.Progress(0, 10, None, stop_on_nonfinite=False)  # train.nonfinite='skip'
  skipping.add(1, dict(ok, loss=float('nan'), skipped=1.0))
  skipping.flush(1)
  assert skipping.skipped == 1


def test_progress_logs_learning_rate_and_step_time():
  """TensorBoard gets the rate each step's update used and the wall time per step."""
  class Writer:
    def __init__(self):
      self.scalars = {}
    def add_scalar(self, tag, value, step):
      self.scalars[tag, step] = value
  c = ml_collections.ConfigDict(dict(lr=1e-3, warmup_steps=4, total_steps=12,
                                     schedule='linear'))
  writer = Writer()
  bar = progress.Progress(0, 12, writer, learning_rate=train.learning_rate(c))
  ok = dict(loss=1.0, accuracy=0.1, tokens=10.0, grad_norm=1.0, skipped=0.0)
  for step in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12):
    bar.add(step, ok)
    if step % 6 == 0:
      bar.flush(step)
  lr = [writer.scalars['train/learning_rate', s] for s in range(1, 13)]
  # Warmup from 0 over 4 updates, then linear decay to 0 at update 12.
  np.testing.assert_allclose(lr, [0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 8.75e-4, 7.5e-4, 6.25e-4, 5e-4,
                                  3.75e-4, 2.5e-4, 1.25e-4], rtol=1e-6, atol=1e-12)
  assert {k for k in writer.scalars if k[0] == 'train/step_time_s'} == {
      ('train/step_time_s', 6), ('train/step_time_s', 12)}
  assert all(writer.scalars['train/step_time_s', s] >= 0 for s in (6, 12))


@pytest.mark.parametrize('objective', ['mlm', 'clm'])
def test_model_without_language_embeddings_trains(tiny_config, objective):
  """BERT-style (no language embeddings): the language ids are not fed to the model."""
  config = tiny_config.copy_and_resolve_references()
  config.model.num_languages = 0
  config.objective.name = objective
  task, tokenizer, s, state = setup_and_state(config)
  embeddings = state['params']['encoder']['embeddings']
  assert not any('lang' in name for name in embeddings), sorted(embeddings)
  batch = task.train_rows.batch(0, config.train.batch_size, seed=config.seed)
  assert 'langs' in batch and 'langs' not in s.put(batch)
  # The step's loss is the eval step's on the same params, batch and masking key
  # (dropout is 0 in :tiny): the mean over this batch's predictions.
  k_obj, _ = jax.random.split(jax.random.fold_in(state['rng'], state['step']))
  with jax.set_mesh(s.mesh):
    sums = jax.device_get(s.eval_step(state['params'], s.extras, s.put(batch), k_obj))
    state, metrics = s.train_step(state, s.extras, s.put(batch))
  metrics = jax.device_get(metrics)
  assert sums[f'{objective}/weight'] > 100
  np.testing.assert_allclose(metrics['loss'], sums[f'{objective}/loss'] / sums[f'{objective}/weight'],
                             rtol=1e-5)
  np.testing.assert_allclose(metrics[f'{objective}/accuracy'],
                             sums[f'{objective}/correct'] / sums[f'{objective}/weight'], rtol=1e-5)
  # Untrained: about ln(vocab) nats per prediction.
  assert abs(metrics['loss'] - np.log(tokenizer.vocab_size)) < 1.0, metrics['loss']


def test_train_step_compiles_once(tiny_config):
  """Every batch has the same shapes and dtypes: no recompilation after step 1."""
  config = tiny_config.copy_and_resolve_references()
  task, _, s, state = setup_and_state(config)
  with jax.set_mesh(s.mesh):
    for step in range(4):
      batch = task.train_rows.batch(step, config.train.batch_size, seed=config.seed)
      state, _ = s.train_step(state, s.extras, s.put(batch))
  assert s.train_step._cache_size() == 1  # pylint: disable=protected-access
