"""configs/unilm.py:tiny trains end to end: training and held-out losses fall.

Built from the pre-training job's task and train.setup's pieces (data,
vocabulary, model, objective, jitted steps, all from the config) rather than
pretrain.train_job, whose checkpoints and full test-split pass
tests/test_train.py already covers: this stays < 30 s.
"""
import itertools
import pytest

import jax
import numpy as np

from configs import unilm as unilm_config
from plm import run, train
from plm import workdir as workdir_lib
from plm.jobs import pretrain

pytestmark = pytest.mark.e2e


def heldout_loss(s, params, batches, head='unilm'):
  sums = [jax.device_get(s.eval_step(params, s.extras, s.put(b), jax.random.PRNGKey(2)))
          for b in batches]
  return (sum(float(x[f'{head}/loss']) for x in sums) /
          sum(float(x[f'{head}/weight']) for x in sums))


def test_tiny_unilm_config_trains(tiny_config, tmp_path):
  config = unilm_config.get_config('tiny')
  assert config.objective.name == 'unilm' and config.model.num_segments == 2
  config.data.tfds_dir = tiny_config.data.tfds_dir
  config.data.vocab_path = tiny_config.data.vocab_path  # en + es vocabulary; fine for en
  config.train.steps = 30
  config.optim.warmup_steps = 5
  config = run.resolve(config.copy_and_resolve_references())
  tokenizer = workdir_lib.load_tokenizer(config, str(tmp_path))
  task = pretrain.make_task(config, tokenizer)
  assert task.objective.heads == ('unilm',)
  s = train.setup(config, task)
  valid = pretrain.heldout_sets(config, tokenizer, 'validation')
  assert set(valid) == {'en'}
  batches = list(itertools.islice(valid['en'].iterate_once(config.train.eval_batch_size), 2))

  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(config.seed), s.extras)
    embeddings = state['params']['encoder']['embeddings']  # BERT-style: segments, no languages
    assert embeddings['segment']['embedding'].shape[0] == 2 and 'language' not in embeddings
    before = heldout_loss(s, state['params'], batches)
    losses = []
    for step in range(config.train.steps):
      batch = task.train_rows.batch(step, config.train.batch_size, seed=config.seed)
      state, metrics = s.train_step(state, s.extras, s.put(batch))
      losses.append(metrics['loss'])
    losses = np.asarray(jax.device_get(losses))
    after = heldout_loss(s, state['params'], batches)

  assert np.isfinite(losses).all(), losses
  assert losses[-5:].mean() < losses[:5].mean() - 0.8, losses
  # Untrained: ~ln(1000) = 6.9 nats per masked token; 30 steps learn the unigram and more.
  assert after < before - 1.0, (before, after)
