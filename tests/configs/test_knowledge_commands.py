"""The docstring commands of the knowledge, distillation and transformers configs, run in
order (tests/configs/commands.py)."""
import pytest

from tests.configs import commands

pytestmark = pytest.mark.e2e
NAMES = ('ernie.py', 'ernie2.py', 'hf.py', 'tiny.py')


@pytest.mark.parametrize('name', NAMES)
def test_documented_commands_run_in_order(name, tmp_path):
  commands.run_documented_commands(name, tmp_path)
