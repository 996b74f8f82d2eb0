"""2 processes x 4 CPU devices compute the same two steps as 1 process x 8 devices."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from plm import configlib, distributed

pytestmark = pytest.mark.e2e

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(('localhost', 0))
    return sock.getsockname()[1]


def _start(tiny_config, workdir, layout, out, devices, env_extra):
  env = {k: v for k, v in os.environ.items() if k not in distributed.ENV.values()}
  env.update(XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             JAX_PLATFORMS='cpu', **env_extra)
  return subprocess.Popen(
      [sys.executable, os.path.join(HERE, 'multiprocess_check.py'), tiny_config.data.tfds_dir,
       tiny_config.data.vocab_path, str(workdir), layout, str(out)],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize('layout', ['fsdp8'])
def test_two_processes_match_one(tiny_config, tmp_path, layout):
  """fsdp8 shards every parameter over both processes: their all-gathers and
  reduce-scatters cross the process boundary (gloo), and the checkpoint is
  written by both."""
  port = _free_port()
  procs = [_start(tiny_config, tmp_path / 'multi', layout, tmp_path / 'multi.npz', 4,
                  dict(JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
                       JAX_PROCESS_ID=str(i))) for i in range(2)]
  procs.append(_start(tiny_config, tmp_path / 'single', layout, tmp_path / 'single.npz', 8, {}))
  outputs = []
  for p in procs:
    try:
      outputs.append(p.communicate(timeout=300)[0])
    finally:
      p.kill()
  for p, text in zip(procs, outputs):
    assert p.returncode == 0, text
  assert 'process 0/2: 4 local devices' in outputs[0]
  assert '0/1: 8 local devices' in outputs[2]
  multi, single = np.load(tmp_path / 'multi.npz'), np.load(tmp_path / 'single.npz')
  assert sorted(multi.files) == sorted(single.files)
  np.testing.assert_allclose(multi['loss'], single['loss'], rtol=1e-6)
  for key in single.files:
    np.testing.assert_allclose(multi[key], single[key], atol=1e-6, err_msg=key)


def test_partial_settings_name_what_is_missing(monkeypatch):
  for var in distributed.ENV.values():
    monkeypatch.delenv(var, raising=False)
  dc = configlib.base().distributed
  assert not distributed.initialize(dc)  # nothing set: one process, nothing to join
  monkeypatch.setenv('JAX_COORDINATOR_ADDRESS', 'localhost:1')
  with pytest.raises(ValueError, match=r'missing config.distributed.num_processes \(or '
                     r'JAX_NUM_PROCESSES\), config.distributed.process_id'):
    distributed.initialize(dc)
  dc.num_processes, dc.process_id = 2, 2
  with pytest.raises(ValueError, match='process_id=2 must be in 0..num_processes-1'):
    distributed.initialize(dc)
  monkeypatch.setenv('JAX_NUM_PROCESSES', 'two')
  dc.num_processes = 0
  with pytest.raises(ValueError, match="JAX_NUM_PROCESSES='two' is not an integer"):
    distributed.initialize(dc)
