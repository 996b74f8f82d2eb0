"""End to end: MLM+TLM on the tiny XLM config, and the vocab job with its fingerprint check."""
import itertools
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from plm import run, train
from plm import workdir as workdir_lib
from plm.data import tokenizer as tokenizer_lib
from plm.jobs import pretrain, vocab

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def heldout_loss(s, params, batches, head='mlm'):
  sums = [jax.device_get(s.eval_step(params, s.extras, s.put(b), jax.random.PRNGKey(2)))
          for b in batches]
  return (sum(float(x[f'{head}/loss']) for x in sums) /
          sum(float(x[f'{head}/weight']) for x in sums))


def test_tiny_config_trains_mlm_plus_tlm(tiny_config, tmp_path):
  config = run.resolve(tiny_config.copy_and_resolve_references())
  config.data.tlm_share = 0.5  # XLM's MLM+TLM: half the rows are translation pairs
  config.train.steps = 30
  config.optim.warmup_steps = 5
  tokenizer = workdir_lib.load_tokenizer(config, str(tmp_path))
  task = pretrain.make_task(config, tokenizer)
  s = train.setup(config, task)
  rows = task.train_rows
  assert rows.names == ('en', 'es', 'en-es', 'es-en')
  np.testing.assert_allclose(rows.weights[2:], [0.25, 0.25])
  np.testing.assert_allclose(rows.weights[:2].sum(), 0.5)
  heldout = pretrain.heldout_sets(config, tokenizer, 'validation')
  assert set(heldout) == {'en', 'es', 'en-es', 'es-en'}
  batches = list(itertools.islice(heldout['en-es'].iterate_once(32), 2))
  # A TLM row's segment holds both languages; about half the rows of a batch are TLM,
  # and exactly those rows carry a TLM stream id (2 = en-es, 3 = es-en).
  tlm_rows = 0
  for step in range(10):
    b = rows.batch(step, 32, seed=0)
    for row in range(32):
      first = b['segment_ids'][row] == 1
      two_languages = len(np.unique(b['langs'][row][first])) == 2
      assert two_languages == (b['stream'][row] >= 2), (step, row, b['stream'][row])
      tlm_rows += two_languages
  assert 100 < tlm_rows < 220, tlm_rows  # of 320; binomial(320, 0.5) sd is 9

  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(config.seed), s.extras)
    before = heldout_loss(s, state['params'], batches)
    losses = []
    for step in range(config.train.steps):
      state, metrics = s.train_step(state, s.extras,
                                    s.put(rows.batch(step, 32, seed=config.seed)))
      losses.append(metrics['loss'])
    losses = np.asarray(jax.device_get(losses))
    after = heldout_loss(s, state['params'], batches)
  assert s.train_step._cache_size() == 1  # pylint: disable=protected-access
  assert np.isfinite(losses).all(), losses
  assert losses[-5:].mean() < losses[:5].mean() - 0.8, losses
  # Held-out en->es TLM rows: untrained ~ln(1000) = 6.9 nats per masked token.
  assert after < before - 1.0, (before, after)


def run_main(args, tiny_config, workdir):
  cmd = [sys.executable, '-m', 'plm.main', '--config=configs/xlm.py:tiny', f'--workdir={workdir}',
         f'--config.data.tfds_dir={tiny_config.data.tfds_dir}'] + list(args)
  return subprocess.run(cmd, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS='cpu'), text=True,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False)


def test_vocab_job_and_a_mismatching_vocabulary_is_refused(tiny_config, tmp_path, capsys):
  proc = run_main(['--config.job=vocab'], tiny_config, tmp_path)
  assert proc.returncode == 0, proc.stdout
  path = tmp_path / 'vocab' / 'spm.model'
  fingerprint = tokenizer_lib.Tokenizer.load(str(path)).fingerprint
  assert f'trained {path}' in proc.stdout
  assert f'--config.data.vocab_fingerprint={fingerprint}' in proc.stdout
  # Sampled per language (vocab_alpha 0.5): another alpha trains another vocabulary.
  config = tiny_config.copy_and_resolve_references()
  config.data.vocab_path = ''
  config.data.vocab_alpha = 1.0
  assert workdir_lib.load_tokenizer(config, str(tmp_path / 'alpha1')).fingerprint != fingerprint
  # Deterministic: the tests' shared vocabulary (same data and alpha) is the same file.
  assert tokenizer_lib.Tokenizer.load(tiny_config.data.vocab_path).fingerprint == fingerprint

  # The config records the fingerprint: the same file passes, another is refused.
  config.data.vocab_path = str(path)
  config.data.vocab_fingerprint = fingerprint
  assert workdir_lib.load_tokenizer(config, '').fingerprint == fingerprint
  config.data.vocab_path = str(tmp_path / 'alpha1' / 'vocab' / 'spm.model')  # another file
  other = tokenizer_lib.Tokenizer.load(config.data.vocab_path).fingerprint
  message = (f'the vocabulary {config.data.vocab_path} has fingerprint {other} but the config '
             f'expects {fingerprint} (data.vocab_fingerprint); point data.vocab_path at')
  with pytest.raises(ValueError, match=re.escape(message)):
    pretrain.train_job(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run' / 'checkpoints')  # refused before any step

  # The job itself keeps an existing file and checks it too.
  config.data.vocab_path = ''
  assert vocab.build_vocab(config, str(tmp_path)) == fingerprint
  assert f'kept the existing {path}' in capsys.readouterr().out
  config.data.vocab_fingerprint = other
  with pytest.raises(ValueError, match=f'has fingerprint {fingerprint} but the config expects'):
    vocab.build_vocab(config, str(tmp_path))
