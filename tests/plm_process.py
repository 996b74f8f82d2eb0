"""`python -m plm.main` in a child process, for the tests that kill and restart runs."""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(args, workdir, **popen) -> subprocess.Popen:
  """`python -m plm.main --config=configs/xlm.py:tiny --workdir=... *args`, output captured."""
  cmd = [sys.executable, '-m', 'plm.main', '--config=configs/xlm.py:tiny',
         f'--workdir={workdir}'] + list(args)
  return subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS='cpu'),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def kill_once_exists(proc: subprocess.Popen, path, timeout: float = 300) -> None:
  """kill -9 `proc` as soon as `path` exists (a finished checkpoint), as a crash would."""
  deadline = time.time() + timeout
  while not os.path.exists(path) and time.time() < deadline and proc.poll() is None:
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL, f'it ended before {path} existed:\n{proc.stdout.read()}'


def assert_trees_equal(a, b) -> None:
  """Bitwise equality, leaf by leaf."""
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
