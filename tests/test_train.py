"""End to end: the tiny XLM config trains, resumes bitwise, and fails clearly."""
import json
import os

import jax
import numpy as np
import pytest

from plm import run, train
from plm import workdir as workdir_lib
from plm.jobs import pretrain
from tests import plm_process

pytestmark = pytest.mark.e2e


def run_main(args, workdir, tiny_config, **popen):
  """`python -m plm.main` on the tiny config, sharing the tests' data and vocabulary."""
  return plm_process.start([f'--config.data.tfds_dir={tiny_config.data.tfds_dir}',
                            f'--config.data.vocab_path={tiny_config.data.vocab_path}'] + list(args),
                           workdir, **popen)


def test_tiny_config_learns(tiny_config, tmp_path):
  """Loss falls by a margin; held-out MLM beats the unigram baseline in every language."""
  config = tiny_config.copy_and_resolve_references()
  results = pretrain.train_job(config, str(tmp_path))
  assert results['step'] == config.train.steps
  assert set(results['test']) == {'en', 'es'}  # one held-out set per language, no TLM
  for lang, heads in results['test'].items():
    assert set(heads) == {'mlm'}, (lang, heads)
    m = heads['mlm']
    assert m['predictions'] > 5000, lang
    assert m['loss'] < m['unigram_loss'] - 0.3, (lang, m)
    assert m['accuracy'] > m['unigram_accuracy'] + 0.01, (lang, m)
    np.testing.assert_allclose(m['ppl'], np.exp(m['loss']), rtol=1e-5)
  events = [f for f in os.listdir(tmp_path / 'tb') if f.startswith('events')]
  assert events, 'no TensorBoard summaries written'
  # The run directory describes itself: results.json is what the job returned, and
  # config.json is the resolved config (one language embedding per language).
  with open(tmp_path / 'results.json', encoding='utf-8') as f:
    assert json.load(f) == json.loads(json.dumps(results))
  with open(tmp_path / 'config.json', encoding='utf-8') as f:
    saved = json.load(f)
  assert saved['model']['num_languages'] == 2 and saved['data']['languages'] == ['en', 'es']


def test_config_json_round_trips(tiny_config, tmp_path):
  """{workdir}/config.json reads back as the config that wrote it (what plm.load rebuilds)."""
  config = run.resolve(tiny_config.copy_and_resolve_references())
  workdir_lib.write_config(config, str(tmp_path))
  saved = workdir_lib.read_config(str(tmp_path))
  assert saved.model.to_dict() == config.model.to_dict()
  assert saved.data.languages == config.data.languages == ('en', 'es')
  assert saved.data.tlm_pairs == config.data.tlm_pairs == ('en-es',)


def params_of(workdir, config):
  """The newest checkpoint's params as numpy."""
  config = run.resolve(config.copy_and_resolve_references())
  tokenizer = workdir_lib.load_tokenizer(config, str(workdir))
  s = train.setup(config, pretrain.make_task(config, tokenizer))
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
  plm_process.kill_once_exists(killed, tmp_path / 'killed' / 'checkpoints' / '20')
  restarted = run_main(steps, tmp_path / 'killed', tiny_config)
  out = restarted.communicate(timeout=300)[0]
  assert restarted.returncode == 0, out
  assert 'resumed from step' in out, out
  config = tiny_config.copy_and_resolve_references()
  step_a, a = params_of(tmp_path / 'straight', config)
  step_b, b = params_of(tmp_path / 'killed', config)
  assert step_a == step_b == 40
  plm_process.assert_trees_equal(a, b)


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
  assert "config.job='trian' is unknown. Did you mean train" in out


def test_missing_and_empty_corpus_are_clear_errors(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.data.corpus = 'textdir'
  config.data.text_dir = str(tmp_path / 'text')
  config.data.vocab_path = ''
  os.makedirs(config.data.text_dir)
  with pytest.raises(FileNotFoundError, match='en.train.txt'):
    pretrain.train_job(config, str(tmp_path / 'run'))
  for lang in ('en', 'es'):
    (tmp_path / 'text' / f'{lang}.train.txt').write_text('\n\n')
  with pytest.raises(ValueError, match='empty'):
    pretrain.train_job(config, str(tmp_path / 'run'))
