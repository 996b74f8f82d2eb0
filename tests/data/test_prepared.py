"""Prepared corpora (plm/data/prepared.py): the in-memory path's rows, streamed by grain."""
import collections
import importlib
import json
import os

import grain
import jax
import numpy as np
import pytest

from plm import checkpoint, main, run
from plm.data import mixing, pipeline, prepared
from plm.jobs import pretrain
from plm.data import tokenizer as tokenizer_lib
from tests import plm_process

CHAPTERS = {'train': (0, 40), 'validation': (40, 45), 'test': (45, 50)}


def write_textdir(config, directory) -> str:
  """Real text: the first 50 chapters of each shipped Bible, as a textdir corpus."""
  for lang in config.data.languages:
    docs = pipeline.load_texts(config.data, 'train', languages=(lang,))[lang]
    for split, (a, b) in CHAPTERS.items():
      with open(os.path.join(directory, f'{lang}.{split}.txt'), 'w', encoding='utf-8') as f:
        f.write('\n\n'.join('\n'.join(doc) for doc in docs[a:b]) + '\n')
  return str(directory)


def textdir_config(tiny_config, tmp_path, **data):
  config = tiny_config.copy_and_resolve_references()
  config.data.corpus = 'textdir'
  config.data.text_dir = write_textdir(tiny_config, tmp_path)
  config.data.prepared_dir = str(tmp_path / 'prepared')
  config.data.update(data)
  return config


@pytest.fixture(scope='module')
def prepared_config(tiny_config, tmp_path_factory):
  config = textdir_config(tiny_config, tmp_path_factory.mktemp('textdir'))
  prepared.prepare(config.data, tokenizer_lib.load(config.data.vocab_path),
                   config.data.prepared_dir)
  return config


def tokenizer(config):
  return tokenizer_lib.load(config.data.vocab_path)


def test_prepared_rows_are_the_in_memory_rows(prepared_config):
  tok = tokenizer(prepared_config)
  ds = prepared.PreparedDataset(prepared_config.data, tok)
  for split in ('train', 'test'):
    for lang in prepared_config.data.languages:
      expected = pipeline.make_dataset(prepared_config.data, tok, split, languages=(lang,))
      got = ds.heldout_rows(split, lang)
      assert len(got) == len(expected) > 0
      for key in pipeline.KEYS:
        np.testing.assert_array_equal(got.arrays[key], expected.arrays[key], err_msg=key)
  meta = prepared.read_meta(prepared_config.data.prepared_dir)
  en = meta['splits']['train']['en']
  assert en['documents'] == 40
  en_rows = pipeline.make_dataset(prepared_config.data, tok, 'train', languages=('en',))
  assert en['tokens'] == int(np.sum(en_rows.arrays['segment_ids'] > 0))
  np.testing.assert_array_equal(  # the unigram baseline's counts
      np.load(os.path.join(prepared_config.data.prepared_dir, prepared.UNIGRAM))['en'],
      en_rows.token_counts(tok.vocab_size))


def test_mixing_weights_are_the_in_memory_ones(prepared_config):
  tok = tokenizer(prepared_config)
  streamed = prepared.PreparedDataset(prepared_config.data, tok)
  in_memory = mixing.make_train_dataset(prepared_config.data, tok)
  assert streamed.names == in_memory.names == ('en', 'es')
  np.testing.assert_allclose(streamed.weights, in_memory.weights, rtol=1e-12)
  assert streamed.weights[0] != 0.5  # not uniform: alpha sampling of the token shares
  np.testing.assert_array_equal(streamed.token_counts(tok.vocab_size),
                                in_memory.token_counts(tok.vocab_size))
  streams = np.concatenate([streamed.batch(s, 32, seed=0)['stream'] for s in range(40)])
  np.testing.assert_allclose(np.bincount(streams) / len(streams), streamed.weights, atol=0.02)
  batch = streamed.batch(0, 32, seed=0)
  assert sorted(batch) == sorted(in_memory.batch(0, 32, seed=0))
  # langs index data.languages on real tokens, stream ids the same order
  for row in range(32):
    real = batch['segment_ids'][row] > 0
    assert set(batch['langs'][row][real]) == {batch['stream'][row]}


@pytest.mark.parametrize('process_count', [2, 3])
def test_process_shards_cover_every_row_once(prepared_config, process_count):
  config = prepared_config.copy_and_resolve_references()
  config.data.languages = ('en',)
  ds = prepared.PreparedDataset(config.data, tokenizer(config))
  records = ds.records('train', 'en')
  everything = collections.Counter(records[i]['tokens'].tobytes() for i in range(len(records)))
  seen = collections.Counter()
  for p in range(process_count):
    mine = len(range(p, len(records), process_count))  # one epoch of this process's shard
    stream = ds.dataset(process_count, seed=3, process_index=p, process_count=process_count)
    rows = [stream[step]['tokens'][0].tobytes() for step in range(mine)]
    assert len(set(rows)) == len(rows) == mine  # no row twice within the epoch
    seen.update(rows)
  assert seen == everything


def test_iterator_state_resumes_with_the_next_batch(prepared_config):
  ds = prepared.PreparedDataset(prepared_config.data, tokenizer(prepared_config))
  it = ds.iterator(8, seed=1)
  first = [next(it) for _ in range(7)]
  state = it.get_state()
  rest = [next(it) for _ in range(5)]
  resumed = ds.iterator(8, seed=1)
  resumed.set_state(state)
  for a, b, step in zip(rest, [next(resumed) for _ in range(5)], range(7, 12)):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
      np.testing.assert_array_equal(a[key], ds.batch(step, 8, seed=1)[key])
  assert not np.array_equal(first[0]['tokens'], ds.batch(0, 8, seed=2)['tokens'])


def test_another_vocabulary_or_row_length_is_refused(prepared_config, tmp_path):
  sentences = [s for doc in pipeline.read_text_file(
      os.path.join(prepared_config.data.text_dir, 'en.train.txt')) for s in doc]
  other = tokenizer_lib.load_or_train(str(tmp_path / 'spm.model'), sentences, 500)
  with pytest.raises(ValueError, match=r'prepared with vocabulary .* set data.vocab_path'):
    prepared.PreparedDataset(prepared_config.data, other)
  shorter = prepared_config.copy_and_resolve_references()
  shorter.data.seq_len = 32
  with pytest.raises(ValueError, match='rows of 64 tokens but data.seq_len=32'):
    prepared.PreparedDataset(shorter.data, tokenizer(prepared_config))
  missing = prepared_config.copy_and_resolve_references()
  missing.data.prepared_dir = str(tmp_path / 'nothing')
  with pytest.raises(FileNotFoundError, match='Run the prepare job first'):
    prepared.PreparedDataset(missing.data, tokenizer(prepared_config))
  with pytest.raises(ValueError, match='already holds a prepared corpus'):
    prepared.prepare(prepared_config.data, tokenizer(prepared_config),
                     prepared_config.data.prepared_dir)


@pytest.mark.parametrize('content', ['', '\n\n  \n'])
def test_empty_corpus_is_refused(tiny_config, tmp_path, content):
  config = textdir_config(tiny_config, tmp_path)
  with open(os.path.join(config.data.text_dir, 'es.validation.txt'), 'w') as f:
    f.write(content)
  with pytest.raises(ValueError, match=r'es\.validation\.txt is empty'):
    prepared.prepare(config.data, tokenizer(config), config.data.prepared_dir)
  assert not os.path.exists(os.path.join(config.data.prepared_dir, prepared.META))


def _main(args, workdir, config, **popen):
  """`python -m plm.main` on the tiny config over the prepared textdir corpus."""
  return plm_process.start(['--config.data.corpus=textdir',
                            f'--config.data.text_dir={config.data.text_dir}',
                            f'--config.data.vocab_path={config.data.vocab_path}',
                            f'--config.data.prepared_dir={config.data.prepared_dir}'] + list(args),
                           workdir, **popen)


def _params(workdir):
  """The newest checkpoint's step and params, read without building the run."""
  directory = str(workdir / 'checkpoints')
  step, shapes, _ = checkpoint.saved_params(directory)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  params, _ = checkpoint.restore_params(directory, shapes,
                                        jax.tree_util.tree_map(lambda _: device, shapes))
  return step, jax.tree_util.tree_map(np.asarray, params)


@pytest.mark.e2e
def test_prepare_job_then_kill_and_resume_is_bitwise_equal(prepared_config, tmp_path, capsys):
  config = prepared_config.copy_and_resolve_references()
  config.data.prepared_dir = str(tmp_path / 'prepared')
  module, function = main.JOBS['prepare']
  getattr(importlib.import_module(module), function)(config, str(tmp_path / 'vocab_run'))
  assert (prepared.read_meta(config.data.prepared_dir)['fingerprint'] ==
          prepared.read_meta(prepared_config.data.prepared_dir)['fingerprint'])
  config.train.steps, config.train.checkpoint_every, config.train.eval_every = 30, 10, 1000
  pretrain.train_job(config, str(tmp_path / 'straight'))
  # kill -9 once the checkpoint of step 20 is complete, then run the same command again
  steps = ['--config.train.steps=30', '--config.train.checkpoint_every=10',
           '--config.train.eval_every=1000']
  killed = _main(steps, tmp_path / 'killed', config)
  ckpt = tmp_path / 'killed' / 'checkpoints' / '20'
  plm_process.kill_once_exists(killed, ckpt)
  with open(ckpt / 'data' / 'process_0-of-1.json', encoding='utf-8') as f:
    assert json.load(f)['next_index'] == 20  # 20 batches read, none ahead
  capsys.readouterr()
  pretrain.train_job(config, str(tmp_path / 'killed'))
  resumed_at = int(capsys.readouterr().out.split('resumed from step ')[1].split()[0])
  assert resumed_at == 20
  step_a, a = _params(tmp_path / 'straight')
  step_b, b = _params(tmp_path / 'killed')
  assert step_a == step_b == 30
  plm_process.assert_trees_equal(a, b)


def test_checkpoint_without_iterator_state_is_refused(tmp_path):
  """A run trained in memory, continued with data.prepared_dir: one clear error."""
  mngr = checkpoint.manager(str(tmp_path))
  checkpoint.save(mngr, 10, {'w': np.zeros(2)}, {'vocab': 'x'})
  checkpoint.wait(mngr, 10)
  with pytest.raises(ValueError, match='step 10 .* has no data-iterator state.*new --workdir'):
    checkpoint.restore_data(mngr, 10, iter(grain.MapDataset.range(3).to_iter_dataset()))
  stream = iter(grain.MapDataset.range(3).to_iter_dataset())
  checkpoint.save(mngr, 20, {'w': np.zeros(2)}, {'vocab': 'x'}, stream)
  checkpoint.wait(mngr, 20)
  os.rename(tmp_path / 'checkpoints' / '20' / 'data' / 'process_0-of-1.json',
            tmp_path / 'checkpoints' / '20' / 'data' / 'process_0-of-2.json')
  with pytest.raises(ValueError, match=r"process_0-of-2.json'\], none for this process "
                                       r'\(process_0-of-1.json\); resume with the process count'):
    checkpoint.restore_data(mngr, 20, stream)


def test_jobs_that_read_the_corpus_themselves_refuse_prepared_dir(tiny_config):
  config = tiny_config.copy_and_resolve_references()
  config.data.prepared_dir = '/somewhere'
  config.job = 'classify'
  with pytest.raises(ValueError, match='job=classify reads data.corpus itself: unset'):
    run.resolve(config)
  config.job = 'evaluate'
  run.resolve(config)
