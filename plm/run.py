"""The resolved config: derived fields filled in and checked before any job runs, and the
loop's settings of a fine-tuning job.
"""
import json
import os

import ml_collections

from plm import models
from plm.errors import UserError


PREPARED_JOBS = ('train', 'evaluate', 'prepare')  # the jobs that read data.prepared_dir


def recorded_vocab_path(run_dir: str) -> str:
  """The vocabulary the run in `run_dir` trained with: the data.vocab_path its config.json
  records, else its own vocab/spm.model; '' where neither is there (not a finished run)."""
  run_dir = os.path.abspath(os.path.expanduser(run_dir))
  path = os.path.join(run_dir, 'config.json')
  if os.path.isfile(path):
    with open(path, encoding='utf-8') as f:
      recorded = json.load(f).get('data', {}).get('vocab_path', '')
    if recorded:
      return recorded
  own = os.path.join(run_dir, 'vocab', 'spm.model')
  return own if os.path.isfile(own) else ''


def run_dir_of(init_from: str) -> str:
  """The run directory of config.init_from (its checkpoints/ directory, or the run itself)."""
  path = os.path.abspath(os.path.expanduser(init_from))
  return os.path.dirname(path) if os.path.basename(path) == 'checkpoints' else path


def resolve(config) -> ml_collections.ConfigDict:
  """Fills derived fields in place: model.num_languages=-1 -> one per data.languages; with
  config.init_from and no data.vocab_path, the vocabulary of the run it starts from."""
  if config.get('init_from') and not config.data.vocab_path:
    config.data.vocab_path = recorded_vocab_path(run_dir_of(config.init_from))
  if config.model.get('num_languages', 0) == -1:
    config.model.num_languages = len(config.data.languages)
  if config.model.get('num_languages', 0) not in (0, len(config.data.languages)):
    raise UserError(f'model.num_languages={config.model.num_languages} but data.languages has '
                    f'{len(config.data.languages)}; set -1 (one per language), or 0 for no '
                    'language embeddings')
  if config.data.get('prepared_dir') and config.get('job') not in PREPARED_JOBS:
    raise UserError(f'data.prepared_dir is read by job=train/evaluate (and written by '
                    f'job=prepare); job={config.get("job")} reads data.corpus itself: unset '
                    '--config.data.prepared_dir')
  models.check_fields(config.model)
  return config


def finetune_config(config) -> ml_collections.ConfigDict:
  """The loop's settings for a fine-tuning job: finetune.* in place of train.* / optim.*."""
  fc = config.finetune
  if 'max_len' in config.model and fc.seq_len > config.model.max_len:  # LASER: any length
    raise UserError(f'finetune.seq_len={fc.seq_len} exceeds model.max_len='
                    f'{config.model.max_len}; lower finetune.seq_len (model.max_len is fixed by '
                    'the pre-trained run)')
  c = config.copy_and_resolve_references()
  c.train.steps, c.optim.total_steps = fc.steps, fc.steps
  c.train.batch_size, c.train.eval_every = fc.batch_size, fc.eval_every
  c.train.accum_steps, c.train.loss_chunk, c.train.retrieval_every = 1, 0, 0
  c.optim.lr, c.optim.warmup_steps = fc.lr, fc.warmup_steps
  return c
