"""configs/tiny.py end to end: a teacher trains, a student distils from it, the teacher is
pruned and int8-quantized; each result is tested on held-out verses."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from plm import masks, models
from plm import workdir as workdir_lib
from plm.compress import quantize
from plm.jobs import compress, distill, pretrain
from plm.nn.quant import int8_matmul

pytestmark = pytest.mark.e2e


def config(variant, tfds_dir, **overrides):
  c = tiny.get_config(variant)
  c.data.tfds_dir = tfds_dir
  for key, value in overrides.items():
    node = c
    *path, last = key.split('.')
    for p in path:
      node = node[p]
    node[last] = value
  return c


@pytest.fixture(scope='module')
def teacher(tfds_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('teacher'))
  pretrain.train_job(config('tiny_teacher', tfds_dir, **{'train.steps': 60}), workdir)
  return workdir


def test_student_distils_from_the_teacher(teacher, tfds_dir, tmp_path):
  workdir = str(tmp_path / 'student')
  c = lambda steps: config('tiny', tfds_dir, **{'distill.teacher': teacher, 'train.steps': steps})
  first = distill.distill_job(c(1), workdir)['test']['en']
  last = distill.distill_job(c(40), workdir)['test']['en']  # resumes at step 1
  for head in ('kl', 'hidden', 'attention', 'mlm'):
    assert last[head]['loss'] < first[head]['loss'], head
  assert last['mlm']['predictions'] == first['mlm']['predictions'] > 1000
  loaded = workdir_lib.load(workdir)  # a distilled run reads as a plain encoder_lm
  assert loaded.config.model.layers == 1 and 'kd_projection' in loaded.params
  assert loaded.methods() == ('embed',) and loaded.embed(['In the beginning']).shape[0] == 1
  # the student's own vocabulary must be the teacher's
  bad = c(1)
  bad.data.vocab_path = str(tmp_path / 'other' / 'spm.model')
  bad.data.vocab_size = 500
  with pytest.raises(ValueError, match='the teacher was trained on'):
    distill.distill_job(bad, str(tmp_path / 'bad'))


def test_teachers_other_model_or_heads_are_errors(teacher, tfds_dir, tmp_path):
  c = config('tiny', tfds_dir, **{'distill.teacher': teacher, 'model.heads': 2})
  with pytest.raises(ValueError, match="set model.heads=4 or drop 'attention'"):
    distill.distill_job(c, str(tmp_path / 'a'))
  c = config('tiny', tfds_dir, **{'distill.teacher': str(tmp_path / 'nothing')})
  with pytest.raises(FileNotFoundError, match='not a plm run directory'):
    distill.distill_job(c, str(tmp_path / 'b'))


def test_int8_is_within_tolerance_of_float32_on_trained_weights(teacher, tfds_dir, tmp_path):
  """Stated tolerance: each block matmul within 2% (relative Frobenius error) of float32 on
  the trained kernels and real hidden states; the whole model's vocabulary logits within 3%,
  with the same top prediction at >= 90% of the tokens."""
  loaded = workdir_lib.load(teacher)
  tok = loaded.tokenizer
  ids = tok.encode(['In the beginning God created the heaven and the earth.',
                    'And the earth was without form, and void; and darkness was upon it.'])
  tokens = np.zeros((2, 32), np.int32)
  for r, row in enumerate(ids):
    tokens[r, :len(row)] = row[:32]
  positions = np.broadcast_to(np.arange(32), tokens.shape)
  states = loaded.model.apply({'params': loaded.params}, tokens, positions,
                              masks.padding_mask(tokens > 0), method=lambda m, *a: m.encoder(
                                  *a, all_layers=True))
  x = np.asarray(states[1])[tokens > 0]  # real tokens entering layer 1
  layer = loaded.params['encoder']['layer_1']
  for w in (layer['mlp']['wi']['kernel'], layer['self_attention']['query']['kernel']):
    w = np.asarray(w).reshape(w.shape[0], -1)
    q, s = quantize.quantize_kernel(w, 1)
    err = np.linalg.norm(int8_matmul(jnp.asarray(x), q, s) - x @ w) / np.linalg.norm(x @ w)
    assert err < 0.02, err
  # the whole model: int8 logits at every real token of the two verses
  q = loaded.config.model.copy_and_resolve_references()
  q.quant = 'int8'
  args = (tokens, positions, masks.padding_mask(tokens > 0))
  fp32 = np.asarray(loaded.model.apply({'params': loaded.params}, *args))[tokens > 0]
  int8 = np.asarray(models.build(q, loaded.tokenizer.vocab_size).apply(
      {'params': quantize.quantize_params(loaded.params)}, *args))[tokens > 0]
  assert np.linalg.norm(int8 - fp32) / np.linalg.norm(fp32) < 0.03
  assert np.mean(int8.argmax(-1) == fp32.argmax(-1)) >= 0.9


def test_prune_and_quantize_end_to_end(teacher, tfds_dir, tmp_path):
  workdir = str(tmp_path / 'small')
  c = config('tiny', tfds_dir, **{'job': 'compress', 'compress.source': teacher,
                                  'compress.prune_heads': 0.5, 'compress.prune_ff': 0.25,
                                  'compress.quantize': 'int8'})
  results = compress.compress_job(c, workdir)
  assert sum(results['model']['layer_heads']) == 4 and sum(results['model']['layer_ff']) == 384
  src, small = results['source_test']['en']['mlm'], results['test']['en']['mlm']
  assert small['predictions'] == src['predictions'] and np.isfinite(small['loss'])
  assert small['loss'] < src['unigram_loss'] + 0.5  # a pruned model, not a broken one
  assert results['bytes'] < 0.6 * results['source_bytes']
  loaded = workdir_lib.load(workdir)  # the compressed run reads back through orbax as a run
  assert tuple(loaded.config.model.layer_heads) == tuple(results['model']['layer_heads'])
  assert loaded.config.model.quant == 'int8'
  assert loaded.methods() == ('embed',)
  assert np.isfinite(loaded.embed(['In the beginning', 'Amen.'])).all()
  assert loaded.params['encoder']['layer_0']['mlp']['wi']['kernel'].dtype == np.int8
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['model']['quant'] == 'int8'
  c.compress.prune_heads = 1.0
  with pytest.raises(ValueError, match=r'must be in \[0, 1\)'):
    compress.compress_job(c, str(tmp_path / 'bad'))
