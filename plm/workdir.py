"""A run directory: {workdir}/config.json, results.json, vocab/ and checkpoints/.

Every run writes its resolved config to `{workdir}/config.json`; a run
directory is then self-describing: `load(workdir)` (`plm.load`) rebuilds the
tokenizer and the model from it, restores the newest parameters and returns a
`Loaded` run whose methods (embed, generate, translate, classify, entity_vectors)
run it as its jobs do. A classify run also writes {workdir}/labels.json.
"""
import json
import os
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from plm import checkpoint, models, run
from plm import meta as meta_lib
from plm.data import pipeline, sampling, text
from plm.data import tokenizer as tokenizer_lib
from plm.decode import outputs
from plm.errors import MissingFileError, UserError
from plm.evaluate import embedding
from plm.objectives import classify as classify_objective


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


LABELS_FILE = 'labels.json'  # a classify run's label names and input fields


def write_labels(workdir: str, labels: tuple[str, ...], pairs: bool, token_types: bool) -> str:
  """{workdir}/labels.json: what `Loaded.classify` needs beside the checkpoint (label i is
  the model's class i; `pairs`: `text_a\ttext_b` inputs; `token_types`: B's type is 1)."""
  return write_results(dict(labels=list(labels), pairs=pairs, token_types=token_types),
                       workdir, LABELS_FILE)


class Loaded(NamedTuple):
  """A trained run: what `plm.load(workdir)` returns.

  Its methods run the model as the run's jobs do; each serves the runs it names and
  any other raises UserError listing the run's methods (`methods()`).
  """
  config: ml_collections.ConfigDict
  tokenizer: Any  # None for a run without a vocabulary (TransE)
  model: Any  # flax.linen Module
  params: Any  # on one device
  step: int
  workdir: str = ''

  def methods(self) -> tuple[str, ...]:
    """The methods this run serves."""
    job, text = self.config.get('job', ''), self.tokenizer is not None
    serves = dict(embed=text and hasattr(self.model, 'sentence_vectors'),
                  generate=job == 'generate', translate=job == 'mt',
                  classify=job == 'classify', entity_vectors=hasattr(self.model, 'tables'))
    return tuple(name for name, ok in serves.items() if ok)

  def _check(self, method: str) -> None:
    if method not in self.methods():
      raise UserError(f'{self.workdir} is a job={self.config.get("job", "")!r} run of '
                      f'model.name={self.config.model.name!r}, which has no .{method}(); its '
                      f'methods are {list(self.methods()) or "none"} (embed: a run with '
                      'sentence vectors; generate: job=generate; translate: job=mt; classify: '
                      'job=classify; entity_vectors: TransE)')

  def embed(self, lines: list[str], language: str | None = None) -> np.ndarray:
    """float32 [len(lines), hidden] sentence vectors (embed.layer, embed.pooling of the
    run's config): what job=embed writes. `language` defaults to embed.language."""
    self._check('embed')
    return embedding.embed_lines(self.config, self.tokenizer, self.model, self.params,
                                 list(lines), language or self.config.embed.language, 'lines')

  def _decode(self, lines: list[str], limit, decode_ids) -> list[str]:
    """One output a line through the jobs' decode path; an empty line gives ''."""
    lines = list(lines)
    ids = self.tokenizer.encode(lines)
    max_ids, too_long = limit(self.config)
    for number, row in enumerate(ids, start=1):
      if len(row) + 2 > max_ids:
        raise UserError(f'line {number}: {len(row) + 2} tokens with bos/eos, {too_long}')
    return text.map_lines(lines, lambda todo: decode_ids(
        self.config, self.model, self.tokenizer, self.params, [ids[i] for i in todo]))

  def generate(self, lines: list[str]) -> list[str]:
    """A UNILM generate run's output for each source line (decode.* of its config), as
    job=generate with decode.input writes them."""
    self._check('generate')
    return self._decode(lines, outputs.generate_limit, outputs.generate_ids)

  def translate(self, lines: list[str]) -> list[str]:
    """An mt run's translation mt.source -> mt.target of each line, as job=translate
    writes them."""
    self._check('translate')
    return self._decode(lines, outputs.translate_limit, outputs.translate_ids)

  def classify(self, lines: list[str], language: str | None = None) -> list[str]:
    """A classify run's label of each line (`text_a\ttext_b` where it trained on pairs), in
    `language` (default finetune.train_language)."""
    self._check('classify')
    path = os.path.join(self.workdir, LABELS_FILE)
    if not os.path.isfile(path):
      raise MissingFileError(f'no {path}: the classify job writes it; rerun job=classify '
                             'into this --workdir')
    with open(path, encoding='utf-8') as f:
      spec = json.load(f)
    fc, tok = self.config.finetune, self.tokenizer
    fields = 2 if spec['pairs'] else 1
    parts = [line.split('\t') for line in lines]
    if bad := [i for i, p in enumerate(parts, start=1) if len(p) != fields]:
      raise UserError(f'line {bad[0]} has {len(parts[bad[0] - 1])} tab-separated texts; this '
                      f'run classifies {"text_a<TAB>text_b pairs" if fields == 2 else "one text"}'
                      ' a line')
    encoded = [tok.encode([p[k] for p in parts]) for k in range(fields)]
    rows = []
    for number, segments in enumerate(zip(*encoded), start=1):
      row, kind = [tok.bos_id], [0]
      for k, ids in enumerate(segments):
        row, kind = row + ids + [tok.eos_id], kind + [k] * (len(ids) + 1)
      if len(row) > fc.seq_len:
        raise UserError(f'line {number}: {len(row)} tokens with bos/eos, more than '
                        f'finetune.seq_len={fc.seq_len}; shorten the line')
      rows.append((row, kind))
    languages = tuple(self.config.data.languages)
    language = language or fc.train_language
    lang = languages.index(language) if language in languages else 0
    logits = jax.jit(lambda params, inputs: self.model.apply({'params': params}, **inputs,
                                                             deterministic=True))

    def batch(chunk):
      width = fc.seq_len
      arrays = dict(tokens=np.full((len(chunk), width), tok.pad_id, np.int32),
                    segment_ids=np.zeros((len(chunk), width), np.int32),
                    token_types=np.zeros((len(chunk), width), np.int32))
      for r, (row, kind) in enumerate(chunk):
        arrays['tokens'][r, :len(row)], arrays['token_types'][r, :len(row)] = row, kind
        arrays['segment_ids'][r, :len(row)] = 1
      if not spec['token_types']:
        del arrays['token_types']
      arrays['positions'] = np.where(arrays['segment_ids'], np.arange(width), 0)
      arrays['langs'] = np.full((len(chunk), width), lang, np.int32)
      for key in models.unused_inputs(self.config.model):  # as the loop drops them
        del arrays[key]
      inputs, _ = classify_objective.prepare(None, dict(arrays, labels=None), None)
      return [spec['labels'][i] for i in np.asarray(logits(self.params, inputs)).argmax(-1)]

    return outputs.in_batches(batch, rows, fc.batch_size) if rows else []

  def entity_vectors(self) -> np.ndarray:
    """A TransE run's unit-norm entity vectors [entities, dim] (what entities.npz holds)."""
    self._check('entity_vectors')
    return np.asarray(self.model.apply({'params': self.params}, method='tables')[0])


def load(workdir: str, config=None) -> Loaded:
  """The trained run in `workdir`: its config, tokenizer, model, newest params and step,
  with methods that run it as its jobs do:

    run = plm.load('runs/xlm')
    run.embed(['In the beginning ...'])        # [n, hidden], as job=embed
    run.translate([...]); run.generate([...])  # an mt run; a UNILM generate run
    run.classify([...])                        # a classify run: label names
    run.model.apply({'params': run.params}, tokens, langs, method='sentence_vectors')

  `config` (default: the run's config.json) must describe the same model and
  vocabulary as the checkpoint; the saved meta is checked before any array is read.
  A model without a vocabulary (TransE) gives tokenizer None.
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
  current = dict(model=config.model.to_dict())
  if models.has_vocabulary(config.model.name):
    tokenizer = open_tokenizer(config, workdir)
    model = models.build(config.model, tokenizer.vocab_size)
    current['vocab'] = tokenizer.fingerprint
  else:  # the graph is its vocabulary: the entity count is in the config
    tokenizer = None
    model = models.build(config.model, config.model.num_entities)
  step, shapes, _ = checkpoint.saved_params(ckpt_dir,
                                            lambda saved: meta_lib.check_meta(saved, current))
  if tokenizer is not None:
    meta_lib.check_token_table(tokenizer, shapes, ckpt_dir)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  params, _ = checkpoint.restore_params(ckpt_dir, shapes,
                                        jax.tree_util.tree_map(lambda _: device, shapes))
  return Loaded(config, tokenizer, model, params, step, workdir)
