"""The `ernie` and `ernie_finetune` jobs: ERNIE (THU) pre-training, MLM + NSP + dEA on the
linked corpus; fine-tuning to entity typing and relation classification.

  python -m plm.main --config=configs/transe.py --workdir=runs/transe        # entity vectors
  python -m plm.main --config=configs/ernie.py --workdir=runs/ernie \
      --config.ernie.entity_vectors=runs/transe/entities.npz

Rows: KJV verse pairs and WordNet gloss pairs with linked entities (plm/data/ernie.py),
cached in ernie.corpus_dir ('' = {workdir}/linked) with the graph and vocabulary they were
built against; the TransE export must be of the same graph. Both are checked before any
training step, each mismatch one clear error. ernie.entities=False trains the same model on
the same rows without entities (mlm + nsp only): the BERT baseline.
"""
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from plm import models, objectives, run, train
from plm import meta as meta_lib
from plm import workdir as workdir_lib
from plm.data import ernie as ernie_data
from plm.data import ernie_tasks
from plm.data import kg
from plm.errors import UserError
from plm.evaluate import classification
from plm.models import transe
from plm.objectives import base
from plm.objectives import ernie as ernie_objective


def knowledge(config):
  """(graph, TransE vectors of it), checked against each other; model fields resolved."""
  ec, mc = config.ernie, config.model
  if not ec.entity_vectors:
    raise UserError('ernie.entity_vectors is empty: train TransE first (python -m plm.main '
                    '--config=configs/transe.py --workdir=W) and set it to W/entities.npz')
  graph = kg.load_graph(config.kg)
  vectors = transe.load_vectors(os.path.expanduser(ec.entity_vectors))
  if vectors.fingerprint != graph.fingerprint or vectors.entity_keys != graph.entities:
    raise UserError(f'{ec.entity_vectors} holds TransE vectors of graph {vectors.fingerprint}, '
                    f'but kg.* names graph {graph.fingerprint}: train TransE on this graph or '
                    'set kg.* to the graph the vectors were trained on')
  for field, n in (('num_entities', len(graph.entities)), ('entity_dim', vectors.entities.shape[1])):
    if mc[field] == -1:
      mc[field] = n
    elif mc[field] != n:
      raise UserError(f'model.{field}={mc[field]} but the graph and TransE export give {n}; '
                      'set -1 to take theirs')
  return graph, vectors


def corpus_dir(config, workdir: str) -> str:
  return os.path.expanduser(config.ernie.corpus_dir or os.path.join(workdir, 'linked'))


def check_entity_ids(rows, num_entities: int, what: str) -> None:
  """Entity ids must index the table (0 = none, 1..num_entities)."""
  ids = rows.arrays['entities']
  if ids.size and (ids.min() < 0 or ids.max() > num_entities):
    raise UserError(f'{what} holds entity ids in [{ids.min()}, {ids.max()}] but the table has '
                    f'{num_entities} entities (ids 1..{num_entities}, 0 = none); rebuild it '
                    'against this graph (delete ernie.corpus_dir)')


def make_task(config, tokenizer, workdir: str) -> train.Task:
  if config.model.name != 'ernie':
    raise UserError(f"job=ernie pre-trains model.name='ernie' (it is {config.model.name!r}); "
                    'configs/ernie.py sets it')
  if config.train.accum_steps != 1:
    raise UserError('train.accum_steps must be 1 for ERNIE: dEA scores each token against the '
                    "entities of the whole batch, which micro-batches would split")
  ec, oc = config.ernie, config.objective
  graph, vectors = knowledge(config)
  linking = lambda: ernie_data.make_linking(graph)
  rows_of = lambda split: ernie_data.pretraining_rows(
      split, tokenizer, graph, linking, seq_len=config.data.seq_len, seed=config.seed,
      max_pairs=ec.max_pairs, tfds_dir=config.data.tfds_dir,
      corpus_dir=corpus_dir(config, workdir))
  rows = rows_of('train')
  check_entity_ids(rows, len(graph.entities), 'the linked corpus')
  print(f'ernie: {len(rows)} sentence pairs of {config.data.seq_len} tokens '
        f"({', '.join(f'{s} {rows.info[s]}' for s in ernie_data.SOURCES)}), fingerprint "
        f'{rows.fingerprint}; graph {graph.fingerprint}; vocabulary {tokenizer.fingerprint}; '
        f"entities {'on' if ec.entities else 'OFF (the BERT baseline)'}", flush=True)
  special = objectives.special_ids(tokenizer)
  objective = ernie_objective.make(
      mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size, special_ids=special,
      num_predictions=oc.num_predictions, mask_rate=oc.mask_rate,
      num_entities=len(graph.entities), entity_table=ernie_objective.entity_table(vectors.entities),
      entities=ec.entities,
      prior_logp=base.unigram_logp(rows.token_counts(tokenizer.vocab_size), special))
  base.loss_weights(objective, oc.get('loss_weights'))
  model = models.build(config.model, tokenizer.vocab_size)
  return train.Task('ernie', model, config.model, objective, rows,
                    lambda split: {'linked': rows_of(split)}, meta=meta_lib.of_tokenizer(tokenizer))


def ernie_job(config, workdir: str) -> dict:
  """Pre-trains ERNIE (resuming), then prints and writes the held-out table."""
  t0 = time.time()
  config = run.resolve(config)
  workdir = workdir_lib.workdir_path(workdir)
  tokenizer = workdir_lib.load_tokenizer(config, workdir)
  task = make_task(config, tokenizer, workdir)
  results = train.train_and_evaluate(config, workdir, task)
  if results:
    results.update(wall_seconds=round(time.time() - t0, 1), entities=config.ernie.entities)
    workdir_lib.write_results(results, workdir)
  return results



# ----- Fine-tuning: entity typing and relation classification -----

def finetune_model_config(config, num_classes: int):
  """The pre-trained run's model fields under the marker-pooling classifier."""
  mc = models.config('ernie_classifier')
  mc.update({k: v for k, v in config.model.items() if k != 'name'})
  mc.num_classes = num_classes
  return mc


def make_finetune_task(config, tokenizer, workdir: str) -> train.Task:
  fc, ec = config.finetune, config.ernie
  names = ernie_tasks.labels(fc.task)
  graph, vectors = knowledge(config)
  linking = lambda: ernie_data.make_linking(graph)
  rows_of = functools.cache(lambda split: ernie_tasks.task_rows(
      fc.task, split, tokenizer, graph, linking, seq_len=fc.seq_len, seed=0,
      max_examples=ec.max_examples if split == 'train' else ec.max_eval_examples,
      tfds_dir=config.data.tfds_dir, corpus_dir=corpus_dir(config, workdir),
      max_sentences=ec.max_sentences))
  rows = rows_of('train')
  check_entity_ids(rows, len(graph.entities), f'the {fc.task} rows')
  counts = np.bincount(rows.arrays['labels'], minlength=len(names))
  print(f'ernie_finetune: {fc.task}, {len(rows)} training examples ({rows.info["too_long"]} '
        f'longer than {fc.seq_len} left out), {len(names)} classes, fingerprint '
        f"{rows.fingerprint}; entities {'on' if ec.entities else 'OFF (the BERT baseline)'}",
        flush=True)
  mc = finetune_model_config(config, len(names))
  model = models.build(mc, tokenizer.vocab_size)
  table = ernie_objective.entity_table(vectors.entities)
  objective = ernie_objective.classifier(counts, entity_table=table, entities=ec.entities)
  majority = int(np.argmax(counts))

  @jax.jit
  def predict(params, batch, table):
    inputs, targets = objective.prepare(None, batch, {'entities': table})
    return jnp.argmax(model.apply({'params': params}, **inputs), -1), targets['classify']

  def report(params, table_):
    del table_
    device_table = jnp.asarray(table)
    out = dict(task=fc.task, **classification.evaluate(
        lambda batch: predict(params, batch, device_table), rows_of('test'),
        config.train.eval_batch_size, names, majority))
    print(f"\n{fc.task} (test, {out['model']['examples']} examples): model " + ', '.join(
        f'{k} {v:.3f}' for k, v in out['model'].items() if k != 'examples') + '; majority '
          + ', '.join(f'{k} {v:.3f}' for k, v in out['majority'].items() if k != 'examples'),
          flush=True)
    return dict(scores=out)

  return train.Task(f'ernie_{fc.task}', model, mc, objective, rows,
                    lambda split: {fc.task: rows_of(split)}, report=report,
                    meta=meta_lib.of_tokenizer(tokenizer))


def finetune_job(config, workdir: str) -> dict:
  """Fine-tunes (init_from a pre-trained ERNIE or baseline run) on finetune.task."""
  t0 = time.time()
  config = run.finetune_config(run.resolve(config))
  workdir = workdir_lib.workdir_path(workdir)
  tokenizer = workdir_lib.load_tokenizer(config, workdir)
  task = make_finetune_task(config, tokenizer, workdir)
  config.model = task.model_config
  results = train.train_and_evaluate(config, workdir, task)
  if results:
    results.update(wall_seconds=round(time.time() - t0, 1), entities=config.ernie.entities)
    workdir_lib.write_results(results, workdir)
  return results
