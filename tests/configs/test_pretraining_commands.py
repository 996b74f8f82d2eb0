"""The docstring commands of the pre-training configs, run in order (tests/configs/commands.py)."""
import pytest

from tests.configs import commands

pytestmark = pytest.mark.e2e
NAMES = ('laser.py', 'mass.py', 'transe.py', 'unilm.py', 'xlm.py')


def test_every_config_is_covered_and_documents_its_commands():
  from tests.configs import test_knowledge_commands  # pylint: disable=g-import-not-at-top
  assert sorted(NAMES + test_knowledge_commands.NAMES) == commands.CONFIGS
  for name in commands.CONFIGS:
    assert commands.documented_commands(f'{commands.REPO}/configs/{name}'), name
    assert name in commands.SPEED, f'add {name} to SPEED'


@pytest.mark.parametrize('name', NAMES)
def test_documented_commands_run_in_order(name, tmp_path):
  commands.run_documented_commands(name, tmp_path)
