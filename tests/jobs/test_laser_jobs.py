"""LASER end to end on configs/laser.py:tiny: the laser job over four directions, embed
(padding-free vectors, order, empty lines), mine, and the bad-input errors."""
import json

import numpy as np
import pytest

from configs import laser as laser_config
from plm import workdir as workdir_lib
from plm.evaluate import embedding
from plm.jobs import embed, laser, mine

pytestmark = pytest.mark.e2e


def laser_tiny(tiny_config, **overrides):
  c = laser_config.get_config('tiny')
  c.data.tfds_dir = tiny_config.data.tfds_dir
  c.train.steps, c.train.checkpoint_every = 40, 40
  c.retrieval.max_pairs = 64
  for k, v in overrides.items():
    c[k.split('.')[0]][k.split('.')[1]] = v
  return c


@pytest.fixture(scope='module')
def laser_run(tiny_config, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('laser'))
  config = laser_tiny(tiny_config)
  config.data.vocab_path = str(tmp_path_factory.mktemp('laser_vocab') / 'spm.model')
  return config, workdir, laser.train_job(config, workdir)


def test_trains_every_direction_and_reports_retrieval(laser_run):
  config, workdir, results = laser_run
  assert set(results['test']) == {'en-es', 'es-en', 'en_web-es', 'en_web-en'}
  for table in results['test'].values():  # 40 steps already beat the unigram baseline
    assert table['mt']['loss'] < table['mt']['unigram_loss']
  assert set(results['train_info']['directions']) == set(results['test'])
  assert set(results['retrieval']) == {'en_kjv->es_rv1909', 'es_rv1909->en_kjv', 'setting'}
  assert results['retrieval']['setting']['pooling'] == 'max'
  with open(f'{workdir}/config.json') as f:
    assert json.load(f)['model']['name'] == 'laser'


def test_embed_job_gives_padding_free_vectors_in_order(laser_run, tmp_path):
  config, workdir, _ = laser_run
  lines = ['In the beginning God created the heaven and the earth.', '', 'And God said',
           'Y dijo Dios: Sea la luz: y fué la luz.']
  (tmp_path / 'in.txt').write_text('\n'.join(lines) + '\n', encoding='utf-8')
  c = config.copy_and_resolve_references()
  c.embed.input, c.embed.output = str(tmp_path / 'in.txt'), str(tmp_path / 'v.npy')
  c.embed.batch_size = 3
  vectors = embed.embed_file(c, workdir)
  assert vectors.shape == (4, 2 * c.model.hidden)
  assert np.array_equal(np.load(tmp_path / 'v.npy'), vectors)
  # Each line alone (no padding, another batch shape) gives the same vector.
  loaded = workdir_lib.load(workdir, c)
  assert loaded.methods() == ('embed',) and np.array_equal(loaded.embed(lines), vectors)
  embedder = embedding.make_embedder(loaded.model, loaded.config, loaded.tokenizer.pad_id)
  rows = embedding.encode_lines(loaded.tokenizer, lines, None, 'in.txt')
  for i, row in enumerate(rows):
    alone = embedding.embed_rows(embedder, loaded.params, [row], 0, 1)
    np.testing.assert_allclose(alone[0], vectors[i], atol=1e-5)


def test_bad_input_is_one_clear_error(tiny_config, laser_run, tmp_path):
  config, workdir, _ = laser_run
  c = laser_tiny(tiny_config, **{'laser.directions': ('en-de',)})
  with pytest.raises(ValueError, match=r"laser.directions entry 'en-de': unknown language"):
    laser.directions(c)
  c = laser_tiny(tiny_config, **{'laser.directions': ('en-en',)})
  with pytest.raises(ValueError, match=r"write a direction as 'en-es'"):
    laser.directions(c)
  c = config.copy_and_resolve_references()
  c.embed.pooling = 'mean'
  c.embed.input, c.embed.output = str(tmp_path / 'in.txt'), str(tmp_path / 'v.npy')
  (tmp_path / 'in.txt').write_text('And God said\n', encoding='utf-8')
  with pytest.raises(ValueError, match=r"LASER model's sentence vector is the max-pool"):
    embed.embed_file(c, workdir)
  c.embed.pooling = 'max'
  (tmp_path / 'in.txt').write_bytes(b'caf\xe9\n')
  with pytest.raises(ValueError, match=r'UTF-8'):
    embed.embed_file(c, workdir)


def test_mine_job_writes_scored_pairs_best_first(laser_run, tmp_path):
  config, workdir, _ = laser_run
  en = ['In the beginning God created the heaven and the earth.', '', 'And God said, Let there '
        'be light: and there was light.', 'And the evening and the morning were the first day.']
  es = ['Y dijo Dios: Sea la luz: y fué la luz.', 'EN el principio crió Dios los cielos y la '
        'tierra.', '', '', 'Y fué la tarde y la mañana un día.']
  (tmp_path / 'en.txt').write_text('\n'.join(en) + '\n', encoding='utf-8')
  (tmp_path / 'es.txt').write_text('\n'.join(es) + '\n', encoding='utf-8')
  c = config.copy_and_resolve_references()
  c.job, c.mine.src, c.mine.tgt = 'mine', str(tmp_path / 'en.txt'), str(tmp_path / 'es.txt')
  c.mine.output, c.mine.src_language, c.mine.tgt_language = str(tmp_path / 'm.tsv'), 'en', 'es'
  c.mine.k, c.mine.threshold, c.mine.backend = 2, -1e9, 'jnp'
  out = mine.mine_files(c, workdir)
  lines = (tmp_path / 'm.tsv').read_text(encoding='utf-8').splitlines()
  assert len(lines) == len(out) == 3  # 'max': each of the 3 non-empty lines once per side
  rows = [line.split('\t') for line in lines]
  scores = [float(r[0]) for r in rows]
  assert scores == sorted(scores, reverse=True)
  assert {r[1] for r in rows} == {l for l in en if l} and len({r[2] for r in rows}) == 3
  assert all(r[2] in es and r[2] for r in rows)
  c.mine.tgt_language = 'de'
  with pytest.raises(ValueError, match=r"mine.tgt_language='de': the model knows"):
    mine.mine_files(c, workdir)
  c.mine.tgt_language, c.mine.margin = 'es', 'ratios'
  with pytest.raises(ValueError, match=r"mine.margin='ratios': use one of"):
    mine.mine_files(c, workdir)
