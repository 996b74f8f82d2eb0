"""Run plumbing below the jobs: the resolved config, the vocabulary, checkpoint
meta checks, and loading a trained run (`plm.load(workdir)`).

Every run writes its resolved config to `{workdir}/config.json`; a run
directory is then self-describing: `load(workdir)` rebuilds the tokenizer and
the model from it and restores the newest parameters.
"""
import json
import os
from typing import Any, NamedTuple

from absl import logging
from flax import traverse_util
import jax
import ml_collections

from plm import checkpoint, models
from plm.data import pipeline, sampling
from plm.data import tokenizer as tokenizer_lib
from plm.errors import MissingFileError, UserError
from plm.models import encoder as encoder_lib


PREPARED_JOBS = ('train', 'evaluate', 'prepare')  # the jobs that read data.prepared_dir


def resolve(config) -> ml_collections.ConfigDict:
  """Fills derived fields in place: model.num_languages=-1 -> one per data.languages."""
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


def workdir_path(workdir: str) -> str:
  path = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(path, exist_ok=True)
  return path


def write_config(config, workdir: str) -> str:
  """The resolved config as {workdir}/config.json (what `load` rebuilds the run from)."""
  path = os.path.join(workdir, 'config.json')
  if jax.process_index() == 0:
    with open(path, 'w', encoding='utf-8') as f:
      f.write(config.to_json_best_effort(indent=1, sort_keys=True))
  return path


def write_results(results: dict, workdir: str, name: str = 'results.json') -> str:
  path = os.path.join(workdir, name)
  if jax.process_index() == 0:
    with open(path, 'w', encoding='utf-8') as f:
      json.dump(results, f, indent=1)
  return path


def read_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(os.path.abspath(os.path.expanduser(workdir)), 'config.json')
  if not os.path.isfile(path):
    raise MissingFileError(f'{path} does not exist: {workdir} is not a plm run directory '
                           '(every run writes its config.json there)')
  with open(path, encoding='utf-8') as f:
    d = json.load(f)
  for key in ('languages', 'tlm_pairs'):  # JSON lists back to the tuples configs use
    d['data'][key] = tuple(d['data'][key])
  # model fields that are sequences are tuples in every model's config (layer_heads,
  # task_heads, ...), nested ones too
  as_tuple = lambda v: tuple(as_tuple(x) for x in v) if isinstance(v, list) else v
  d['model'] = {k: as_tuple(v) for k, v in d['model'].items()}
  return ml_collections.ConfigDict(d)


def vocab_path(config, workdir: str) -> str:
  """data.vocab_path, or the run's own vocabulary in {workdir}/vocab."""
  return os.path.expanduser(config.data.vocab_path or os.path.join(workdir, 'vocab', 'spm.model'))


def load_tokenizer(config, workdir: str):
  """The configured vocabulary, trained on the training split if it is missing."""
  path = vocab_path(config, workdir)
  def texts():  # XLM's joint BPE: sentences sampled q ∝ p^vocab_alpha per language
    yield from sampling.vocab_sentences(pipeline.load_texts(config.data, 'train'),
                                        config.data.vocab_alpha)
  tokenizer = tokenizer_lib.load_or_train(path, texts(), config.data.vocab_size)
  tokenizer_lib.check_fingerprint(tokenizer, config.data.vocab_fingerprint)
  return tokenizer


def open_tokenizer(config, workdir: str):
  """The vocabulary of a trained run; never trains one."""
  path = vocab_path(config, workdir)
  if not os.path.isfile(path):
    raise MissingFileError(f'no vocabulary at {path}; point --workdir at a trained run or set '
                           'data.vocab_path')
  return tokenizer_lib.load(path)


def check_meta(saved: dict, current: dict) -> None:
  """A checkpoint only serves the vocabulary and model it was trained with.

  `current` without 'data' (a job that reads no corpus) skips the data check; without
  'frozen' (params only, e.g. plm.load) the frozen-parameters check.
  """
  if 'frozen' in current and saved.get('task') == 'convert':  # a resume: params alone won't do
    raise UserError('this --workdir holds parameters imported by job=convert, not a training '
                    'run to resume; train in a new --workdir with config.init_from='
                    '<this workdir>/checkpoints')
  if saved.get('vocab') != current['vocab']:
    raise UserError(f"the checkpoint was trained with vocabulary {saved.get('vocab')} but "
                    f"this run's vocabulary is {current['vocab']}; set data.vocab_path to the "
                    'original vocabulary or start in a new --workdir')
  # dtype / remat / attention change how a model computes, not its parameters.
  # Through JSON, as the checkpoint saved it: tuple fields (ERNIE 2.0's task_heads) are lists.
  # A run saved before plm/compress's fields existed had their defaults.
  model = lambda m: json.loads(json.dumps(
      {k: v for k, v in (m or {}).items() if k not in models.COMPUTE_FIELDS
       and not (k in encoder_lib.COMPRESS_DEFAULTS and not v)}))
  if model(saved.get('model')) != model(current['model']):
    raise UserError(f"the checkpoint holds another model ({saved.get('model')}); use the "
                    'config it was trained with or start in a new --workdir')
  if 'frozen' in current and saved.get('frozen', []) != current['frozen']:  # a resume
    raise UserError(f"the checkpoint was trained with frozen parameters {saved.get('frozen', [])}"
                    f" but this run freezes {current.get('frozen', [])}; set "
                    'finetune.freeze_encoder as the run had it, or start in a new --workdir')
  if saved.get('schedule') != current.get('schedule'):  # ERNIE 2.0's continual stages
    raise UserError(f"the checkpoint was trained with the stage schedule {saved.get('schedule')}"
                    f" but this run's is {current.get('schedule')}; a resumed run must continue "
                    'the same schedule: restore ernie2.stages as the run had them, or start in '
                    'a new --workdir')
  if 'data' in current and saved.get('data') != current['data']:
    logging.warning('the training data changed since the checkpoint (fingerprint %s -> %s); '
                    'continuing at the saved step on the new data', saved.get('data'),
                    current['data'])


def check_init_from(config, saved: dict, current: dict) -> None:
  """config.init_from must hold a run of this vocabulary and this model shape."""
  if saved.get('vocab') != current['vocab']:
    raise UserError(f'config.init_from={config.init_from!r} was trained with vocabulary '
                    f"{saved.get('vocab')}, this run uses {current['vocab']}; set "
                    'data.vocab_path to the vocabulary of that run (its vocab/spm.model)')
  saved_model = saved.get('model', {})
  differ = [k for k in encoder_lib.SHAPE_FIELDS
            if k in config.model and saved_model.get(k, 0) != config.model.get(k)]
  if differ:
    raise UserError(f'config.init_from={config.init_from!r} holds another model shape ('
                    + ', '.join(f'model.{k}={saved_model.get(k)!r}' for k in differ)
                    + '); use the config the pre-trained run used')


def check_token_table(tokenizer, shapes, where: str) -> None:
  """The tokenizer's size must be the token embedding table's (an imported vocabulary can
  differ from the checkpoint it came with)."""
  flat = traverse_util.flatten_dict(dict(shapes))
  rows = [v.shape[0] for k, v in flat.items() if k[-2:] == ('token', 'embedding')]
  if rows:
    tokenizer_lib.check_vocab_size(tokenizer, rows[0], f'the checkpoint in {where}')


class Loaded(NamedTuple):
  """A trained run: what `plm.load(workdir)` returns."""
  config: ml_collections.ConfigDict
  tokenizer: Any
  model: Any  # flax.linen Module
  params: Any  # on one device
  step: int


def load(workdir: str, config=None) -> Loaded:
  """The config, tokenizer, model and newest params of the run in `workdir`.

  `config` (default: the run's config.json) must describe the same model and
  vocabulary as the checkpoint; the saved meta is checked before any array is read.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = resolve(config if config is not None else read_config(workdir))
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt_dir) or not any(d.isdigit() for d in os.listdir(ckpt_dir)):
    raise MissingFileError(f'no checkpoint in {ckpt_dir}; train first (config.job=train) or '
                           'point --workdir at a trained run')
  tokenizer = open_tokenizer(config, workdir)
  model = models.build(config.model, tokenizer.vocab_size)
  current = dict(vocab=tokenizer.fingerprint, model=config.model.to_dict())
  step, shapes, _ = checkpoint.saved_params(ckpt_dir, lambda saved: check_meta(saved, current))
  check_token_table(tokenizer, shapes, ckpt_dir)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  params, _ = checkpoint.restore_params(ckpt_dir, shapes,
                                        jax.tree_util.tree_map(lambda _: device, shapes))
  return Loaded(config, tokenizer, model, params, step)


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
