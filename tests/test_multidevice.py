"""Every mesh layout computes the same step as one device (8 fake CPU devices)."""
import os
import pytest
import re
import subprocess
import sys

pytestmark = pytest.mark.e2e

HERE = os.path.dirname(os.path.abspath(__file__))


def test_layouts_match_single_device(tiny_config, tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu')
  proc = subprocess.run(
      [sys.executable, os.path.join(HERE, 'multidevice_check.py'), tiny_config.data.tfds_dir,
       tiny_config.data.vocab_path, str(tmp_path)],
      env=env, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  found = re.findall(r'LAYOUT (\S+) param_diff (\S+) loss_diff (\S+)', proc.stdout)
  assert {name for name, _, _ in found} == {'data4_model2', 'fsdp8', 'data2_fsdp2_model2'}
  for name, param_diff, loss_diff in found:
    assert float(param_diff) < 1e-5 and float(loss_diff) < 1e-5, (name, param_diff, loss_diff)
