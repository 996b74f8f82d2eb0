"""A run directory: {workdir}/config.json, results.json, vocab/ and checkpoints/.

Every run writes its resolved config to `{workdir}/config.json`; a run
directory is then self-describing: `load(workdir)` (`plm.load`) rebuilds the
tokenizer and the model from it and restores the newest parameters.
"""
import json
import os
from typing import Any, NamedTuple

import jax
import ml_collections

from plm import checkpoint, models, run
from plm import meta as meta_lib
from plm.data import pipeline, sampling
from plm.data import tokenizer as tokenizer_lib
from plm.errors import MissingFileError


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
  if config is not None and not config.data.vocab_path:  # e.g. the config file of the run
    config = config.copy_and_resolve_references()
    config.data.vocab_path = run.recorded_vocab_path(workdir)
  config = run.resolve(config if config is not None else read_config(workdir))
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt_dir) or not any(d.isdigit() for d in os.listdir(ckpt_dir)):
    raise MissingFileError(f'no checkpoint in {ckpt_dir}; train first (config.job=train) or '
                           'point --workdir at a trained run')
  tokenizer = open_tokenizer(config, workdir)
  model = models.build(config.model, tokenizer.vocab_size)
  current = dict(vocab=tokenizer.fingerprint, model=config.model.to_dict())
  step, shapes, _ = checkpoint.saved_params(ckpt_dir,
                                            lambda saved: meta_lib.check_meta(saved, current))
  meta_lib.check_token_table(tokenizer, shapes, ckpt_dir)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  params, _ = checkpoint.restore_params(ckpt_dir, shapes,
                                        jax.tree_util.tree_map(lambda _: device, shapes))
  return Loaded(config, tokenizer, model, params, step)
