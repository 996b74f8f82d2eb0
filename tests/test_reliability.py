"""Runs survive SIGTERM, broken checkpoints and failed writes; bad input fails clearly."""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from plm import checkpoint, partitioning, run, train
from plm import workdir as workdir_lib
from plm.jobs import pretrain

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def short(config, steps=20):
  config = config.copy_and_resolve_references()
  config.train.steps = steps
  config.train.checkpoint_every = 10
  config.train.eval_every = 1000
  return config


def setup(config, workdir):
  """The pre-training job's Setup for `config` (a resolved copy)."""
  config = run.resolve(config.copy_and_resolve_references())
  tokenizer = workdir_lib.load_tokenizer(config, str(workdir))
  return train.setup(config, pretrain.make_task(config, tokenizer))


def latest_params(workdir, config):
  s = setup(config, workdir)
  state, _ = checkpoint.restore_latest(checkpoint.manager(str(workdir)), s.abstract_state,
                                       s.state_sharding)
  return int(state['step']), jax.device_get(state['params'])


def test_sigterm_saves_and_exits_zero(tiny_config, tmp_path):
  cmd = [sys.executable, '-m', 'plm.main', '--config=configs/xlm.py:tiny',
         f'--workdir={tmp_path}', f'--config.data.tfds_dir={tiny_config.data.tfds_dir}',
         f'--config.data.vocab_path={tiny_config.data.vocab_path}',
         '--config.train.log_every=5', '--config.train.checkpoint_every=1000']
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, JAX_PLATFORMS='cpu'))
  lines = []
  for line in proc.stdout:  # wait until training is under way
    lines.append(line)
    if line.startswith('step 5/'):
      break
  sent = time.time()
  proc.send_signal(signal.SIGTERM)
  out = ''.join(lines) + proc.communicate(timeout=120)[0]
  assert proc.returncode == 0, out
  assert time.time() - sent < 60
  assert 'stopped by signal 15 at step' in out, out
  stopped_at = int(out.split('stopped by signal 15 at step ')[1].split(';')[0])
  assert 5 <= stopped_at <= 15  # a few steps, not log_every: the host never runs far ahead
  assert os.path.isdir(tmp_path / 'checkpoints' / str(stopped_at))


def test_truncated_newest_checkpoint_falls_back_and_resumes_exactly(tiny_config, tmp_path,
                                                                     capsys):
  config = short(tiny_config)
  pretrain.train_job(config, str(tmp_path))
  _, straight = latest_params(tmp_path, config)
  for root, _, files in os.walk(tmp_path / 'checkpoints' / '20' / 'state'):
    for name in files:
      with open(os.path.join(root, name), 'r+b') as f:
        f.truncate(max(os.path.getsize(f.name) // 2 - 1, 0))
  capsys.readouterr()
  pretrain.train_job(config, str(tmp_path))  # falls back to 10, trains 10 more
  out = capsys.readouterr().out
  assert 'checkpoint step 20 is unreadable' in out, out
  assert 'resumed from step 10' in out, out
  assert os.path.isdir(tmp_path / 'checkpoints' / '20.broken')
  step, resumed = latest_params(tmp_path, config)
  assert step == 20
  for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_failed_checkpoint_write_is_clear_and_keeps_the_previous(tiny_config, tmp_path,
                                                                  monkeypatch):
  config = short(tiny_config)
  real_save = ocp.CheckpointManager.save

  def disk_full_at_20(self, step, *args, **kwargs):
    if step == 20:
      raise OSError(28, 'No space left on device')
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', disk_full_at_20)
  with pytest.raises(checkpoint.CheckpointWriteError,
                     match=r'checkpoint of step 20 .*No space left.*step 10 is intact'):
    pretrain.train_job(config, str(tmp_path))
  monkeypatch.undo()
  assert latest_params(tmp_path, config)[0] == 10


def test_checkpoint_of_another_vocabulary_or_model_is_refused(tiny_config, tmp_path):
  config = short(tiny_config, steps=10)
  pretrain.train_job(config, str(tmp_path / 'run'))
  other_vocab = config.copy_and_resolve_references()
  other_vocab.data.vocab_path = str(tmp_path / 'other' / 'spm.model')
  other_vocab.data.vocab_size = 900
  with pytest.raises(ValueError, match='trained with vocabulary .* set data.vocab_path'):
    pretrain.train_job(other_vocab, str(tmp_path / 'run'))
  other_model = config.copy_and_resolve_references()
  other_model.model.size = 'tiny'
  with pytest.raises(ValueError, match='holds another model'):
    pretrain.train_job(other_model, str(tmp_path / 'run'))
  # Refused, not mistaken for a broken checkpoint: it is still there and resumable.
  assert sorted(os.listdir(tmp_path / 'run' / 'checkpoints')) == ['10']
  step, trained = latest_params(tmp_path / 'run', config)
  assert step == 10
  # config.init_from starts a new run (step 0, fresh optimizer) from those params,
  # and refuses them under another vocabulary.
  fresh = run.resolve(config.copy_and_resolve_references())
  fresh.init_from = str(tmp_path / 'run' / 'checkpoints')
  s = setup(fresh, tmp_path / 'new')
  state = train.restore_or_init(fresh, s, checkpoint.manager(str(tmp_path / 'new')))
  assert int(state['step']) == 0
  assert jax.tree_util.tree_structure(state['params']) == jax.tree_util.tree_structure(trained)
  for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(state['params'])),
                  jax.tree_util.tree_leaves(trained)):
    np.testing.assert_array_equal(a, b)
  # The optimizer starts fresh: Adam's moments are all zero.
  for x in jax.tree_util.tree_leaves(jax.device_get(state['opt_state'])):
    if np.issubdtype(x.dtype, np.floating):
      assert not np.any(x), x
  other_vocab.init_from = fresh.init_from
  s = setup(other_vocab, tmp_path / 'new2')
  with pytest.raises(ValueError, match='init_from=.* was trained with vocabulary'):
    train.restore_or_init(run.resolve(other_vocab), s, checkpoint.manager(str(tmp_path / 'new2')))
  # ... and under another model shape.
  other_model.init_from = fresh.init_from
  s = setup(other_model, tmp_path / 'new3')
  with pytest.raises(ValueError, match=r"init_from=.* holds another model shape \(model.size='test'"):
    train.restore_or_init(run.resolve(other_model), s, checkpoint.manager(str(tmp_path / 'new3')))


def test_sequence_longer_than_the_model_is_refused(tiny_config):
  config = run.resolve(tiny_config.copy_and_resolve_references())
  config.data.seq_len = 128
  with pytest.raises(ValueError, match=r'data.seq_len=128 exceeds model.max_len=64'):
    pretrain.make_task(config, workdir_lib.load_tokenizer(config, ''))


def test_mesh_and_batch_that_do_not_fit_are_refused(tiny_config, tmp_path):
  with pytest.raises(ValueError, match=r'needs 3 devices but 1 are present'):
    partitioning.make_mesh({'data': 3})
  with pytest.raises(ValueError, match=r"unknown mesh axis"):
    partitioning.check_rules((('embed', 'tensor'),))
  config = tiny_config.copy_and_resolve_references()
  config.train.batch_size, config.train.accum_steps = 30, 4
  with pytest.raises(ValueError, match=r'batch_size=30 must be divisible by the data-parallel '
                     r'size 1 times train.accum_steps=4'):
    setup(config, tmp_path)
