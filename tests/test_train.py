"""End to end: the tiny XLM config trains, resumes bitwise, and fails clearly."""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from plm import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(args, workdir, tiny_config, **popen):
  """`python -m plm.main` on the tiny config, sharing the tests' data and vocabulary."""
  cmd = [sys.executable, '-m', 'plm.main', '--config=configs/xlm.py:tiny', f'--workdir={workdir}',
         f'--config.data.tfds_dir={tiny_config.data.tfds_dir}',
         f'--config.data.vocab_path={tiny_config.data.vocab_path}'] + list(args)
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **popen)


def test_tiny_config_learns(tiny_config, tmp_path):
  """Loss falls by a margin; held-out MLM beats the unigram baseline in every language."""
  config = tiny_config.copy_and_resolve_references()
  table = train.train_and_evaluate(config, str(tmp_path))
  for lang, m in table.items():
    assert m['predictions'] > 5000, lang
    assert m['loss'] < m['unigram_loss'] - 0.3, (lang, m)
    assert m['accuracy'] > m['unigram_accuracy'] + 0.01, (lang, m)
  events = [f for f in os.listdir(tmp_path / 'tb') if f.startswith('events')]
  assert events, 'no TensorBoard summaries written'


def params_of(workdir, config):
  """The newest checkpoint's params as numpy."""
  s = train.setup(config, str(workdir))
  from plm import checkpoint  # pylint: disable=g-import-not-at-top
  state, _ = checkpoint.restore_latest(checkpoint.manager(str(workdir)), s.abstract_state,
                                       s.state_sharding)
  return int(state['step']), jax.tree_util.tree_map(np.asarray, state['params'])


def test_kill_and_restart_is_bitwise_equal(tiny_config, tmp_path):
  steps = ['--config.train.steps=40', '--config.train.checkpoint_every=10',
           '--config.train.eval_every=1000']
  straight = run_main(steps, tmp_path / 'straight', tiny_config)
  assert straight.wait(timeout=300) == 0, straight.stdout.read()
  # Kill -9 once a checkpoint mid-run exists, then rerun the same command.
  killed = run_main(steps, tmp_path / 'killed', tiny_config)
  ckpt = tmp_path / 'killed' / 'checkpoints' / '20'
  deadline = time.time() + 300
  while not ckpt.exists() and time.time() < deadline and killed.poll() is None:
    time.sleep(0.05)
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  restarted = run_main(steps, tmp_path / 'killed', tiny_config)
  out = restarted.communicate(timeout=300)[0]
  assert restarted.returncode == 0, out
  assert 'resumed from step' in out, out
  config = tiny_config.copy_and_resolve_references()
  step_a, a = params_of(tmp_path / 'straight', config)
  step_b, b = params_of(tmp_path / 'killed', config)
  assert step_a == step_b == 40
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_unknown_config_key_is_one_clear_error(tiny_config, tmp_path):
  proc = run_main(['--config.train.batchsize=8'], tmp_path, tiny_config)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode != 0
  assert 'Traceback' not in out
  assert "bad config override (--config.train.batchsize)" in out
  assert 'batch_size' in out  # the close match


def test_wrong_type_and_unknown_job_are_one_clear_error(tiny_config, tmp_path):
  proc = run_main(['--config.train.batch_size=eight'], tmp_path, tiny_config)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode != 0 and 'Traceback' not in out
  assert 'bad config override (--config.train.batch_size)' in out
  assert "invalid literal for int() with base 10: 'eight'" in out
  proc = run_main(['--config.job=trian'], tmp_path, tiny_config)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode != 0 and 'Traceback' not in out
  assert "config.job='trian' is unknown. Did you mean train?" in out


def test_missing_and_empty_corpus_are_clear_errors(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.data.corpus = 'textdir'
  config.data.text_dir = str(tmp_path / 'text')
  config.data.vocab_path = ''
  os.makedirs(config.data.text_dir)
  with pytest.raises(FileNotFoundError, match='en.train.txt'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  for lang in ('en', 'es'):
    (tmp_path / 'text' / f'{lang}.train.txt').write_text('\n\n')
  with pytest.raises(ValueError, match='empty'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
