"""What every experiment script shares: one arm = one command, resumable, timed.

`step` runs a `python -m plm.main` command unless its output exists (so a rerun
resumes), logs it, and saves its wall time beside the log (`<arm>.seconds`).
"""
import os
import shlex
import subprocess
import sys
import time


def step(cmd, done: str, log: str, commands: list) -> None:
  """Runs `cmd` (logging to `log`) unless `done` exists; records the command and wall time."""
  text = ' '.join(shlex.quote(c) for c in cmd).replace(sys.executable, 'python')
  commands.append(text)
  if os.path.exists(done):
    return
  print('$ ' + text, flush=True)
  t0 = time.time()
  with open(log, 'w') as f:
    if subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT):
      sys.exit(f'failed; see {log}')
  with open(log.rsplit('.', 1)[0] + '.seconds', 'w') as f:
    f.write(f'{time.time() - t0:.0f}\n')


def seconds(work: str) -> str:
  """The wall time saved for the arm whose workdir is `work` ('-' if none)."""
  try:
    with open(f'{work}.seconds') as f:
      return f.read().strip()
  except OSError:
    return '-'
