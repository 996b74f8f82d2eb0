"""configs/ernie2.py:tiny end to end: two stages, held-out table per task, exact mid-stage
resume, and a checkpoint of another schedule refused."""
import ml_collections
import pytest

from configs import ernie2 as ernie2_config
import plm
from plm import run, train
from plm import workdir as workdir_lib
from plm.jobs import ernie2

pytestmark = pytest.mark.e2e


def _config(tiny_config, stages=None):
  c = ernie2_config.get_config('tiny')
  c.data.tfds_dir = tiny_config.data.tfds_dir
  c.data.vocab_path = tiny_config.data.vocab_path  # 1000 pieces, trained once per session
  c.ernie2.max_chapters = 60  # two books (ir_relevance needs them); linking scales with it
  c.ernie2.stages = stages or (
      dict(steps=20, tasks=dict(knowledge_masking=1.0, capitalization=1.0)),
      dict(steps=20, tasks=dict(knowledge_masking=1.0, capitalization=1.0,
                                sentence_distance=1.0, ir_relevance=1.0)))
  c.train.steps = 40
  c.train.batch_size = 16
  c.train.checkpoint_every = 10
  return c


def test_two_stages_end_to_end_and_exact_resume(tiny_config, tmp_path):
  config = _config(tiny_config)
  results = ernie2.train_job(config, str(tmp_path / 'straight'))
  test = results['test']
  assert results['task_ids'] == ['knowledge_masking', 'capitalization', 'sentence_distance',
                                 'ir_relevance']
  assert set(test) == set(results['task_ids'])  # one held-out set per task, its head alone
  cap = test['capitalization']['capitalization']
  assert cap['accuracy'] > cap['unigram_accuracy']  # beats the majority class, held out
  events = b''.join(p.read_bytes() for p in (tmp_path / 'straight' / 'tb').iterdir())
  assert b'ernie2/task_id' in events and b'train/sentence_distance/loss' in events
  loaded = plm.load(str(tmp_path / 'straight'))  # the continual run embeds like any encoder
  assert loaded.config.model.name == 'ernie2' and loaded.methods() == ('embed',)
  assert loaded.step == results['step'] and loaded.embed(['In the beginning']).shape[0] == 1

  # Stopped mid-stage 2 (step 25 of 40), then resumed by the same command: the same run.
  config = run.resolve(_config(tiny_config))
  tokenizer = workdir_lib.load_tokenizer(config, '')
  task = ernie2.make_task(config, tokenizer)
  stopped = ml_collections.ConfigDict(config.to_dict())  # unlinks optim.total_steps (40)
  stopped.train.steps = 25
  train.train_and_evaluate(stopped, str(tmp_path / 'resumed'), task)
  resumed = ernie2.train_job(_config(tiny_config), str(tmp_path / 'resumed'))
  assert resumed['test'] == test

  other = _config(tiny_config, stages=(
      dict(steps=20, tasks=dict(knowledge_masking=1.0, capitalization=1.0)),
      dict(steps=20, tasks=dict(knowledge_masking=1.0, capitalization=2.0,
                                sentence_distance=1.0, ir_relevance=1.0))))
  with pytest.raises(ValueError, match='stage schedule'):
    ernie2.train_job(other, str(tmp_path / 'resumed'))


def test_config_errors_name_the_fix(tiny_config, tmp_path):
  config = _config(tiny_config)
  config.train.steps = 30
  with pytest.raises(ValueError, match='train.steps=40'):
    ernie2.train_job(config, str(tmp_path))
  config = _config(tiny_config)
  config.model.num_tasks = 3
  with pytest.raises(ValueError, match='model.num_tasks=3'):
    ernie2.train_job(config, str(tmp_path))
