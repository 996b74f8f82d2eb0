"""The embed job: one float32 vector per input line, in order, from the checkpoint."""
import os
import subprocess
import sys

import numpy as np
import pytest

import plm
from plm import masks
from plm import workdir as workdir_lib
from plm.jobs import embed, pretrain

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINES = ['In the beginning God created the heaven and the earth.',
         'En el principio crió Dios los cielos y la tierra.',
         '',
         'In the beginning God created the heaven and the earth.',
         'And the earth was without form, and void.']


@pytest.fixture(scope='module')
def trained(tiny_config, tmp_path_factory):
  config = tiny_config.copy_and_resolve_references()
  config.train.steps = config.train.checkpoint_every = 10
  config.train.eval_every = 1000
  workdir = str(tmp_path_factory.mktemp('embed_run'))
  pretrain.train_job(config, workdir)
  return config, workdir


def test_embed_job_writes_one_vector_per_line_in_order(trained, tmp_path):
  config, workdir = trained
  source = tmp_path / 'in.txt'
  source.write_text('\n'.join(LINES) + '\n', encoding='utf-8')
  out = tmp_path / 'out.npy'
  proc = subprocess.run(
      [sys.executable, '-m', 'plm.main', '--config=configs/xlm.py:tiny', f'--workdir={workdir}',
       f'--config.data.vocab_path={config.data.vocab_path}', '--config.job=embed',
       f'--config.embed.input={source}', f'--config.embed.output={out}',
       '--config.embed.batch_size=2'],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert proc.returncode == 0, proc.stdout + proc.stderr
  vectors = np.load(out)
  assert vectors.shape == (len(LINES), 64) and vectors.dtype == np.float32
  assert np.isfinite(vectors).all()
  # Each vector is the mean of the last layer's states over `[bos] line [eos]`, with the
  # language id of embed.language (en: 0), computed here from the loaded run.
  loaded = workdir_lib.load(workdir, config.copy_and_resolve_references())
  tok = loaded.tokenizer
  for i in (1, 2, 4):  # the empty line too: [bos] [eos]
    row = np.asarray([[tok.bos_id] + tok.encode([LINES[i]])[0] + [tok.eos_id]], np.int32)
    positions = np.arange(row.shape[1])[None]
    states = loaded.model.apply({'params': loaded.params}, row, positions,
                                masks.padding_mask(np.ones_like(row, bool)),
                                langs=np.zeros_like(row),
                                method=lambda m, *a, **k: m.encoder(*a, **k))
    np.testing.assert_allclose(vectors[i], np.asarray(states)[0].mean(0), atol=1e-5)
  np.testing.assert_allclose(vectors[0], vectors[3], atol=1e-6)  # same sentence, same vector
  assert np.abs(vectors[0] - vectors[1]).max() > 1e-3
  # Order and batching do not matter: one line alone gives the same vector.
  config = config.copy_and_resolve_references()
  config.embed.input, config.embed.output = str(tmp_path / 'one.txt'), str(tmp_path / 'one.npy')
  (tmp_path / 'one.txt').write_text(LINES[4] + '\n', encoding='utf-8')
  np.testing.assert_allclose(embed.embed_file(config, workdir)[0], vectors[4], atol=1e-5)


def test_embed_errors_name_the_fix(trained, tmp_path):
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.embed.output = str(tmp_path / 'x.npy')
  config.embed.input = str(tmp_path / 'missing.txt')
  with pytest.raises(FileNotFoundError,
                     match='missing.txt does not exist; it must be embed.input'):
    embed.embed_file(config, workdir)
  config.embed.input = str(tmp_path / 'long.txt')
  (tmp_path / 'long.txt').write_text('ok\n' + 'word ' * 200 + '\n', encoding='utf-8')
  with pytest.raises(ValueError, match=r'long.txt, line 2: \d+ tokens .* model.max_len=64'):
    embed.embed_file(config, workdir)
  config.embed.input = str(tmp_path / 'latin1.txt')
  (tmp_path / 'latin1.txt').write_bytes('ok\ncrió\n'.encode('latin-1'))
  with pytest.raises(ValueError, match=r'latin1.txt, line 2: not UTF-8'):
    embed.embed_file(config, workdir)
  config.embed.input = str(tmp_path / 'long.txt')
  with pytest.raises(FileNotFoundError, match='no checkpoint in'):
    embed.embed_file(config, str(tmp_path / 'untrained'))


def test_loaded_run_embeds_as_the_job_and_names_its_methods(trained, tmp_path):
  """plm.load(workdir).embed gives job=embed's vectors exactly; a method another kind of
  run serves is a UserError naming what this run is and what it has."""
  config, workdir = trained
  config = config.copy_and_resolve_references()
  config.embed.input, config.embed.output = str(tmp_path / 'in.txt'), str(tmp_path / 'out.npy')
  (tmp_path / 'in.txt').write_text('\n'.join(LINES) + '\n', encoding='utf-8')
  job_vectors = embed.embed_file(config, workdir)
  run = plm.load(workdir)
  assert run.methods() == ('embed',) and run.step == 10
  vectors = run.embed(LINES)
  assert vectors.dtype == np.float32 and np.array_equal(vectors, job_vectors)
  es = run.embed(LINES[1:2], language='es')  # another language id, another vector
  assert np.abs(es[0] - vectors[1]).max() > 1e-6
  with pytest.raises(plm.UserError, match=r"job='train' run of model.name='encoder_lm'.*"
                     r"no .translate\(\); its methods are \['embed'\]"):
    run.translate(LINES)
  with pytest.raises(plm.UserError, match=r"'fr' is not in data.languages"):
    run.embed(LINES, language='fr')
