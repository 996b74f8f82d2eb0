"""A fine-tuning job killed with kill -9 and rerun ends exactly as an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

import plm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.e2e


def command(tiny_config, workdir):
  return [sys.executable, '-m', 'plm.main', '--config=configs/xlm.py:tiny',
          '--config.job=classify', f'--workdir={workdir}',
          f'--config.data.tfds_dir={tiny_config.data.tfds_dir}',
          f'--config.data.vocab_path={tiny_config.data.vocab_path}',
          '--config.finetune.steps=40', '--config.train.checkpoint_every=10',
          '--config.train.log_every=5', "--config.finetune.test_languages=('en',)"]


def test_kill_9_then_rerun_gives_the_same_results(tiny_config, tmp_path):
  whole, killed = tmp_path / 'whole', tmp_path / 'killed'
  subprocess.run(command(tiny_config, whole), cwd=REPO, check=True, capture_output=True,
                 timeout=600)
  proc = subprocess.Popen(command(tiny_config, killed), cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  seen = []
  for line in proc.stdout:
    seen.append(line)
    if line.startswith('step 25/40'):  # past the checkpoints of steps 10 and 20
      proc.send_signal(signal.SIGKILL)
      break
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL, ''.join(seen)
  assert not (killed / 'results.json').exists()
  out = subprocess.run(command(tiny_config, killed), cwd=REPO, check=True, capture_output=True,
                       text=True, timeout=600).stdout
  assert 'resumed from step 20' in out or 'resumed from step 10' in out, out
  results = [json.loads((d / 'results.json').read_text()) for d in (whole, killed)]
  assert results[0]['test'] == results[1]['test'] and results[0]['step'] == 40
  assert results[0]['test']['en']['classify']['predictions'] > 1000
  params = [plm.load(str(d)).params for d in (whole, killed)]
  for a, b in zip(*map(jax.tree_util.tree_leaves, params)):
    np.testing.assert_array_equal(a, b)
