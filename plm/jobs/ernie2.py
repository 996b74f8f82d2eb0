"""The `ernie2` job: ERNIE 2.0's continual multi-task pre-training (Sun et al., 2020).

  python -m plm.main --config=configs/ernie2.py --workdir=runs/ernie2
  python -m plm.main --config=configs/ernie2.py:tiny --workdir=/tmp/ernie2_tiny

The tasks of plm/data/ernie2_tasks.py are built from the Bible's chapters (documents) and
verses (sentences) of `ernie2.translation`, with `ernie2.parallel` as the second translation
IR relevance needs and the WordNet entity linker (plm/kg/linker.py) for knowledge masking.
`ernie2.stages` is the continual schedule (plm/data/schedule.py); its steps must add up to
train.steps. Held out: every task's rows of the validation/test chapters, each head's loss,
accuracy and majority-class (or unigram) baseline. The schedule is saved in the checkpoint:
resuming under another schedule is refused.
"""
import functools
import os

import jax
from tensorboardX import SummaryWriter

from plm import models, objectives, run, train
from plm import meta as meta_lib
from plm import workdir as workdir_lib
from plm.data import ernie2_tasks, schedule
from plm.errors import UserError
from plm.kg import linker
from plm.objectives import base, ernie2


@functools.lru_cache(maxsize=1)
def wordnet_table() -> linker.AliasTable:
  """WordNet's noun aliases (~10 s to build): once per process."""
  return linker.wordnet_aliases()


def stages_of(config) -> list[schedule.Stage]:
  stages = schedule.parse_stages(config.ernie2.stages, ernie2_tasks.TASKS,
                                  config.ernie2.continual)
  total = sum(s.steps for s in stages)
  if config.train.steps != total:
    raise UserError(f'train.steps={config.train.steps} but ernie2.stages add up to {total} '
                    f'steps; set --config.train.steps={total}')
  return stages


def make_task(config, tokenizer) -> train.Task:
  ec, seq_len = config.ernie2, config.data.seq_len
  if seq_len > config.model.max_len:
    raise UserError(f'data.seq_len={seq_len} exceeds model.max_len={config.model.max_len}')
  stages = stages_of(config)
  names = schedule.task_order(stages)
  if len(names) > config.model.num_tasks:
    raise UserError(f'the schedule trains {len(names)} tasks {list(names)} (task ids 0..'
                    f'{len(names) - 1}) but model.num_tasks={config.model.num_tasks}; raise it')
  table = wordnet_table() if 'knowledge_masking' in names else None
  parallel = ec.parallel if 'ir_relevance' in names else ''

  def split_rows(split):
    chapters = ernie2_tasks.load_chapters(ec.translation, split, config.data.tfds_dir, parallel)
    chapters = chapters[:ec.max_chapters or None]
    return {n: ernie2_tasks.build_rows(n, chapters, tokenizer, seq_len, seed=config.seed,
                                       stream=i, table=table) for i, n in enumerate(names)}

  train_rows = split_rows('train')
  data = schedule.ScheduledDataset(train_rows, stages, config.seed)
  print(f'ernie2: {data.summary}; fingerprint {data.fingerprint}; vocabulary '
        f'{tokenizer.fingerprint}', flush=True)
  kinds = {n: ernie2_tasks.TASKS[n] for n in names}
  config.model.task_heads = tuple((n, kinds[n][1]) for n in names)
  special = objectives.special_ids(tokenizer)
  priors = {}
  for n, (kind, classes) in kinds.items():
    counts = (train_rows[n].token_counts(tokenizer.vocab_size) if kind == 'mlm' else
              ernie2.class_counts(train_rows[n], kind, classes))
    priors[n] = base.unigram_logp(counts, special if kind == 'mlm' else ())
  oc = config.objective
  km = ernie2.make_knowledge_masking(
      mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size, special_ids=special,
      num_predictions=oc.num_predictions, rate=oc.mask_rate, entity_share=ec.entity_share,
      entity_prob=ec.entity_prob, ngram_prob=oc.ngram_prob)
  objective = ernie2.make([(n, kinds[n][0]) for n in names], priors=priors, km=km)
  base.loss_weights(objective, oc.get('loss_weights'))
  model = models.build(config.model, tokenizer.vocab_size)
  report = lambda params, table: dict(schedule=data.schedule, task_ids=list(names),
                                      train_rows_per_task=data.info)
  return train.Task('ernie2', model, config.model, objective, data, split_rows, report=report,
                    meta=meta_lib.of_tokenizer(tokenizer))


def log_schedule(data: schedule.ScheduledDataset, workdir: str) -> None:
  """The schedule to TensorBoard beside the loop's summaries: its text, and the stage and
  task id of every step (the loop logs a task's train/<task>/* only at its own steps)."""
  if jax.process_index():
    return
  with SummaryWriter(os.path.join(workdir, 'tb')) as writer:
    writer.add_text('ernie2/schedule', data.summary, 0)
    for step in range(data.steps):
      writer.add_scalar('ernie2/stage', data.stage_of(step) + 1, step + 1)
      writer.add_scalar('ernie2/task_id', data.task_of(step), step + 1)


def train_job(config, workdir: str) -> dict:
  """Trains the schedule (resuming mid-stage), then the held-out table per task."""
  config = run.resolve(config)
  workdir = workdir_lib.workdir_path(workdir)
  tokenizer = workdir_lib.load_tokenizer(config, workdir)
  task = make_task(config, tokenizer)
  log_schedule(task.train_rows, workdir)
  return train.train_and_evaluate(config, workdir, task)
