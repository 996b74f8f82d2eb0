"""The `transe` job: TransE on a knowledge graph through the one loop, filtered link
prediction, and the entity vectors exported for the knowledge encoder.

  python -m plm.main --config=configs/transe.py --workdir=runs/transe
  python -m plm.main --config=configs/transe.py --config.kg.source=tsv \
      --config.kg.dir=my_graph/ --workdir=runs/my_graph    # train.txt/valid.txt/test.txt

Rows are the training triples (heads, relations, tails, valid=1), reshuffled every
epoch; the objective corrupts heads or tails inside the step (plm/objectives/transe.py).
Held out: the margin loss on validation/test triples (train.eval_every), and filtered
MRR / Hits@1/3/10 on both sides (plm/evaluate/link_prediction.py) on the validation
triples every transe.eval_every steps and on the test triples at the end, into
results.json ('link_prediction'). The unit-norm entity vectors, their keys and the
graph's fingerprint go to transe.export ({workdir}/entities.npz by default), which
plm.models.transe.load_vectors reads.
"""
import os
import time

import jax
import numpy as np

from plm import checkpoint, models, run, train
from plm import workdir as workdir_lib
from plm.data import kg
from plm.errors import UserError
from plm.evaluate import link_prediction as lp
from plm.models import transe as transe_model
from plm.objectives import transe as transe_objective

SPLITS = {'train': 'train', 'validation': 'valid', 'test': 'test'}  # loop name -> graph split


def resolve(config, graph) -> None:
  """model.num_entities / num_relations from the graph (-1), or checked against it."""
  mc = config.model
  for field, n in (('num_entities', len(graph.entities)),
                   ('num_relations', len(graph.relations))):
    if mc[field] == -1:
      mc[field] = n
    elif mc[field] != n:
      raise UserError(f'model.{field}={mc[field]} but the graph has {n}; set -1 to take the '
                      "graph's count")


def check_workdir(workdir: str, graph) -> None:
  """A run in `workdir` resumes only on the graph it was trained on (named, not a vocabulary)."""
  ckpt = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt) or not any(d.isdigit() for d in os.listdir(ckpt)):
    return
  saved = checkpoint.saved_params(ckpt)[2].get('vocab')
  if saved != graph.fingerprint:
    raise UserError(f'{workdir} holds a TransE run on graph {saved}; this graph is '
                    f'{graph.fingerprint}. Use the graph it was trained on or a new --workdir')


class LinkEvaluator:
  """(params, split) -> filtered link-prediction table of the split's triples."""

  def __init__(self, config, graph, model):
    self.graph, self.model, self.tc = graph, model, config.transe
    everything = np.concatenate([np.asarray(graph.splits[s]).reshape(-1, 3)
                                 for s in ('train', 'valid', 'test')])
    self.known = lp.KnownAnswers(everything, len(graph.relations))

  def __call__(self, params, split: str) -> dict:
    triples = np.asarray(self.graph.splits[SPLITS[split]]).reshape(-1, 3)
    if split == 'validation' and self.tc.max_valid:
      triples = triples[:self.tc.max_valid]
    entities, relations = self.model.apply({'params': params}, method='tables')
    t0 = time.time()
    table = lp.evaluate(entities, relations, triples, self.known, norm=self.model.norm,
                        block=self.tc.eval_block)
    table['seconds'] = round(time.time() - t0, 1)
    table['split'] = split
    return table


def log(table: dict, step: int, writer) -> None:
  print(f"\nlink prediction, {table['split']} (filtered, realistic ranks, step {step}, "
        f"{table['seconds']} s):\n{lp.format_table({table['split']: table})}", flush=True)
  if writer:
    for side in ('both',) + lp.SIDES:
      for k in ('mrr', 'hits@1', 'hits@3', 'hits@10'):
        writer.add_scalar(f"{table['split']}_link/{side}/{k}", table[side][k], step)


def make_task(config, graph, workdir: str) -> train.Task:
  """TransE's rows, model, objective, link-prediction evaluator and export."""
  resolve(config, graph)
  oc = config.objective
  splits = {s: np.asarray(graph.splits[s]).reshape(-1, 3) for s in ('train', 'valid', 'test')}
  if not len(splits['train']):
    raise UserError('the graph has no training triples; check kg.source / kg.dir')
  rows = kg.triple_rows(splits['train'], info=dict(graph.info))
  print(f'transe: {len(rows)} training triples, {len(graph.entities)} entities, '
        f"{len(graph.relations)} relations; valid {len(splits['valid'])}, test "
        f"{len(splits['test'])}; graph {graph.fingerprint}", flush=True)
  model = models.build(config.model, len(graph.entities))
  head_prob = transe_objective.head_probabilities(splits['train'], len(graph.relations),
                                                  oc.sampler)
  objective = transe_objective.objective(num_entities=len(graph.entities),
                                         negatives=oc.negatives, margin=oc.margin,
                                         head_prob=head_prob)
  evaluator = LinkEvaluator(config, graph, model)
  export = config.transe.export or os.path.join(workdir, 'entities.npz')

  def report(params, table):
    del table
    entities, relations = model.apply({'params': params}, method='tables')
    if jax.process_index() == 0:  # one writer; np.asarray needs the whole table (one host)
      transe_model.save_vectors(export, np.asarray(entities), np.asarray(relations),
                                entity_keys=graph.entities, relation_keys=graph.relations,
                                fingerprint=graph.fingerprint, norm=model.norm)
    print(f'entity vectors [{len(graph.entities)}, {model.dim}] -> {export}', flush=True)
    return dict(entity_vectors=export)

  heldout = lambda split: {'kg': kg.triple_rows(splits[SPLITS[split]])}
  evaluators = (('link_prediction', config.transe.eval_every, evaluator, log),)
  return train.Task('transe', model, config.model, objective, rows, heldout, evaluators,
                    report=report,  # the graph is this run's vocabulary
                    meta=dict(vocab=graph.fingerprint, vocab_size=len(graph.entities)))


def transe_job(config, workdir: str) -> dict:
  """Trains TransE (resuming), evaluates test link prediction, exports the vectors."""
  t0 = time.time()
  config = run.resolve(config)
  if config.model.name != 'transe':
    raise UserError(f"job=transe trains model.name='transe' (it is {config.model.name!r}); "
                    'configs/transe.py sets it')
  workdir = workdir_lib.workdir_path(workdir)
  graph = kg.load_graph(config.kg)
  check_workdir(workdir, graph)
  task = make_task(config, graph, workdir)
  results = train.train_and_evaluate(config, workdir, task)
  if results:
    results.update(graph=graph.fingerprint, wall_seconds=round(time.time() - t0, 1))
    workdir_lib.write_results(results, workdir)
  return results
