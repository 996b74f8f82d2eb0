"""Embedding layer choice, the `retrieve` job end to end, periodic retrieval in training."""
import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from plm import masks
from plm import workdir as workdir_lib
from plm.evaluate import bible_retrieval
from plm.evaluate import embedding as embed
from plm.jobs import pretrain, retrieve

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def trained(tiny_config, tmp_path_factory):
  """configs/xlm.py:tiny trained 8 steps with retrieval every 4 (validation) and at the end."""
  config = tiny_config.copy_and_resolve_references()
  config.train.steps, config.train.batch_size = 8, 8
  config.train.checkpoint_every = config.train.retrieval_every = 4
  config.train.eval_every = 1000
  config.retrieval.max_pairs = 48
  workdir = str(tmp_path_factory.mktemp('retrieve_run'))
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    table = pretrain.train_job(config, workdir)
  return config, workdir, table, printed.getvalue()


def _check_table(table, pairs):
  """Both directions over `pairs` verse pairs; P@1 is a count of hits over them, and
  every hit has rank 1 (so the mean rank is at most 1 + misses * (pairs - 1) / pairs)."""
  directions = [k for k in table if k != 'setting']
  assert directions == ['en_kjv->es_rv1909', 'es_rv1909->en_kjv']
  for d in directions:
    m = table[d]
    assert m['pairs'] == pairs
    hits = m['p_at_1'] * pairs
    assert hits == pytest.approx(round(hits), abs=1e-9)
    misses = pairs - round(hits)
    assert 1.0 + misses / pairs <= m['mean_rank'] <= 1.0 + misses * (pairs - 1) / pairs
    assert pairs >= m['median_rank'] >= 1.0


def test_training_reports_retrieval_on_test(trained):
  _, _, table, printed = trained
  _check_table(table['retrieval'], 48)
  # Validation during training (not at the last step), test at the end.
  assert 'step 4 retrieval (validation split' in printed
  assert 'step 8 retrieval (validation split' not in printed
  assert 'step 8 retrieval (test split, layer -1, mean pooling' in printed
  assert table['retrieval']['setting']['split'] == 'test'
  assert set(table['test']) == {'en', 'es'} and set(table['test']['en']) == {'mlm'}


def test_retrieve_job_is_reproducible_and_matches_training(trained, tmp_path):
  config, workdir, table, _ = trained
  out = tmp_path / 'r.json'
  proc = subprocess.run(
      [sys.executable, '-m', 'plm.main', '--config=configs/xlm.py:tiny', f'--workdir={workdir}',
       f'--config.data.vocab_path={config.data.vocab_path}',
       f'--config.data.tfds_dir={config.data.tfds_dir}', '--config.job=retrieve',
       '--config.retrieval.max_pairs=48', f'--config.retrieval.output={out}'],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert '| en_kjv->es_rv1909 |' in proc.stdout
  written = json.loads(out.read_text())
  _check_table(written, 48)
  # The job on the final checkpoint is the table training printed, and again the same.
  for d in ('en_kjv->es_rv1909', 'es_rv1909->en_kjv'):
    assert written[d] == pytest.approx(table['retrieval'][d], abs=1e-9)
  again = retrieve.retrieve(_with(config, retrieval={'output': str(tmp_path / 'again.json'),
                                                     'max_pairs': 48}), workdir)
  assert again == written


def _mean_last_layer(loaded, rows, lang):
  """Sentence vectors computed here, not by plm.evaluate: one padded batch through the
  encoder, the last layer averaged over each row's tokens in numpy."""
  tok = loaded.tokenizer
  width = max(map(len, rows))
  tokens = np.full((len(rows), width), tok.pad_id, np.int32)
  for i, r in enumerate(rows):
    tokens[i, :len(r)] = r
  valid = tokens != tok.pad_id
  states = np.asarray(loaded.model.apply(
      {'params': loaded.params}, tokens, np.broadcast_to(np.arange(width), tokens.shape),
      masks.padding_mask(valid), langs=np.full_like(tokens, lang),
      method=lambda m, *a, **k: m.encoder(*a, **k)), np.float64)
  return (states * valid[..., None]).sum(1) / valid.sum(1, keepdims=True)


def _p_at_1(a, b):
  """Brute force: a[i] retrieves b[i] when its cosine beats every other b[j]."""
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  cos = unit(a) @ unit(b).T
  return float(np.mean([all(cos[i, i] > cos[i, j] for j in range(len(b)) if j != i)
                        for i in range(len(a))]))


def test_training_table_is_the_brute_force_one(trained):
  """The retrieval table of training equals P@1 recomputed from the final params: en rows
  with language id 0, es rows with id 1. Controls: the same vectors on both sides
  retrieve every verse, a shuffled side about 1 in `pairs`."""
  config, workdir, table, _ = trained
  loaded = workdir_lib.load(workdir, config.copy_and_resolve_references())
  evaluator = bible_retrieval.Evaluator(loaded.config, loaded.tokenizer, loaded.model)
  rows, _ = evaluator.split_rows('test')
  assert len(rows[0]) == len(rows[1]) == 48
  en, es = _mean_last_layer(loaded, rows[0], 0), _mean_last_layer(loaded, rows[1], 1)
  got = table['retrieval']
  assert got['en_kjv->es_rv1909']['p_at_1'] == pytest.approx(_p_at_1(en, es), abs=1e-9)
  assert got['es_rv1909->en_kjv']['p_at_1'] == pytest.approx(_p_at_1(es, en), abs=1e-9)
  # The two sides differ (another language id, other text): not a trivial 1.
  assert np.abs(en - es).max() > 1e-3
  assert _p_at_1(en, en) == 1.0
  shuffled = [_p_at_1(en, es[np.random.RandomState(seed).permutation(48)]) for seed in range(5)]
  assert np.mean(shuffled) < 0.1, shuffled  # chance is 1/48


def test_same_translation_on_both_sides_is_retrieved_perfectly(trained):
  """Through the Evaluator: KJV against itself gives P@1 1 and rank 1 in both directions
  (identical rows, identical vectors); KJV against Reina-Valera does not."""
  config, workdir, table, _ = trained
  loaded = workdir_lib.load(workdir, config.copy_and_resolve_references())
  same = _with(loaded.config, retrieval={'translations': ('en_kjv', 'en_kjv'),
                                         'max_pairs': 48})
  result = bible_retrieval.Evaluator(same, loaded.tokenizer, loaded.model)(loaded.params,
                                                                           'test')
  m = result['en_kjv->en_kjv']
  assert m == dict(p_at_1=1.0, mean_rank=1.0, median_rank=1.0, pairs=48), m
  assert table['retrieval']['en_kjv->es_rv1909']['p_at_1'] < 1.0


def _with(config, **groups):
  config = config.copy_and_resolve_references()
  for group, fields in groups.items():
    for k, v in fields.items():
      config[group][k] = v
  return config


def test_layer_choice_and_language_ids(trained, tmp_path):
  config, workdir, _, _ = trained
  loaded = workdir_lib.load(workdir, config.copy_and_resolve_references())
  config, tokenizer, model, params = loaded.config, loaded.tokenizer, loaded.model, loaded.params
  assert loaded.step == 8
  rows = [[tokenizer.bos_id] + ids + [tokenizer.eos_id]
          for ids in tokenizer.encode(['In the beginning God created', 'En el principio'])]
  width = max(map(len, rows))
  tokens = np.full((2, width), tokenizer.pad_id, np.int32)
  for i, r in enumerate(rows):
    tokens[i, :len(r)] = r
  valid = tokens != tokenizer.pad_id
  positions = np.broadcast_to(np.arange(width), tokens.shape)
  states = model.apply({'params': params}, tokens, positions, masks.padding_mask(valid),
                       langs=np.ones_like(tokens),
                       method=lambda m, *a, **k: m.encoder(*a, all_layers=True, **k))
  assert len(states) == model.encoder.layers + 1
  for layer, pooling in [(-1, 'mean'), (0, 'first'), (1, 'max')]:
    c = _with(config, embed={'layer': layer, 'pooling': pooling})
    got = embed.embed_rows(embed.make_embedder(model, c, tokenizer.pad_id), params, rows,
                           tokenizer.pad_id, 4, 1)
    h = np.asarray(states[layer])
    want = {'mean': lambda: (h * valid[..., None]).sum(1) / valid.sum(1, keepdims=True),
            'max': lambda: np.where(valid[..., None], h, -np.inf).max(1),
            'first': lambda: h[:, 0]}[pooling]()
    np.testing.assert_allclose(got, want, atol=1e-5)
  # layer -1 is what the embed job gave before layers existed: the encoder's output.
  last = np.asarray(model.apply({'params': params}, tokens, positions, masks.padding_mask(valid),
                                langs=np.ones_like(tokens), method=lambda m, *a, **k:
                                m.encoder(*a, **k)))
  np.testing.assert_allclose(np.asarray(states[-1]), last, atol=0)
  # The language id reaches the model: en and es ids give different vectors.
  embedder = embed.make_embedder(model, config, tokenizer.pad_id)
  en, es = (embed.embed_rows(embedder, params, rows, tokenizer.pad_id, 4, lang) for lang in (0, 1))
  assert np.abs(en - es).max() > 1e-4


def test_errors_name_the_fix(trained, tmp_path):
  config, workdir, _, _ = trained
  with pytest.raises(ValueError, match=r'embed.layer=3 but the model has 2 blocks; use 0'):
    retrieve.retrieve(_with(config, embed={'layer': 3}), workdir)
  with pytest.raises(ValueError, match=r'embed.layer=-4'):
    retrieve.retrieve(_with(config, embed={'layer': -4}), workdir)
  with pytest.raises(ValueError, match=r"retrieval.translations=\('en_kjv',\): name two"):
    retrieve.retrieve(_with(config, retrieval={'translations': ('en_kjv',)}), workdir)
  with pytest.raises(FileNotFoundError, match='no checkpoint in'):
    retrieve.retrieve(config, str(tmp_path / 'untrained'))
  bert = _with(config, data={'languages': ('en', 'xx')}, model={'num_languages': 2},
               retrieval={'translations': ('en_kjv', 'es_rv1909')})
  with pytest.raises(ValueError, match=r"in another language; set retrieval.translations"):
    bible_retrieval.language_ids(bert, bible_retrieval.translations(bert))
  textdir = _with(config, data={'languages': ('de', 'fr')})
  with pytest.raises(ValueError, match='set retrieval.translations to two of'):
    bible_retrieval.translations(textdir)


SAVE_ON_8_DEVICES = """
import sys
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from plm import checkpoint
mesh = jax.make_mesh((4, 2), ('data', 'model'))
w = np.arange(32, dtype=np.float32).reshape(4, 8)
state = dict(params=dict(w=jax.device_put(w, NamedSharding(mesh, P('data', 'model')))),
             opt_state=dict(m=jax.device_put(w * 2, NamedSharding(mesh, P(None, 'model')))),
             step=np.int32(7))
mngr = checkpoint.manager(sys.argv[1])
checkpoint.save(mngr, 7, state, dict(vocab='v'))
checkpoint.wait(mngr, 7)
"""


def test_params_saved_on_8_devices_restore_on_one(tmp_path):
  """The embed and retrieve jobs read a checkpoint a sharded run wrote (another topology)."""
  import jax  # pylint: disable=g-import-not-at-top
  from plm import checkpoint  # pylint: disable=g-import-not-at-top
  proc = subprocess.run([sys.executable, '-c', SAVE_ON_8_DEVICES, str(tmp_path)], cwd=REPO,
                        capture_output=True, text=True, timeout=120, check=False,
                        env=dict(os.environ, JAX_PLATFORMS='cpu',
                                 XLA_FLAGS='--xla_force_host_platform_device_count=8'))
  assert proc.returncode == 0, proc.stdout + proc.stderr
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = dict(w=jax.ShapeDtypeStruct((4, 8), np.float32))
  params, meta = checkpoint.restore_params(str(tmp_path / 'checkpoints'), abstract,
                                           dict(w=device))
  np.testing.assert_array_equal(params['w'], np.arange(32).reshape(4, 8))
  assert params['w'].sharding == device and meta == dict(vocab='v')
