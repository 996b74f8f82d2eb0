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
from typing import NamedTuple

import jax
import numpy as np

from plm import checkpoint, models, run, train
from plm.data import kg
from plm.data.rows import Rows, per_process
from plm.errors import UserError
from plm.evaluate import link_prediction as lp
from plm.models import transe as transe_model
from plm.objectives import transe as transe_objective

SPLITS = {'train': 'train', 'validation': 'valid', 'test': 'test'}  # loop name -> graph split


class GraphVocab(NamedTuple):
  """What the loop's checkpoint meta records as the 'vocabulary': the graph itself."""
  fingerprint: str
  vocab_size: int  # entities


class TripleRows(Rows):
  """Rows of triples whose batches come from a numpy permutation per epoch.

  Same contract as Rows (a pure function of seed and step, epochs reshuffled and
  concatenated, then cut into batches), but O(batch) per step: Rows' grain index
  shuffle costs ~30 us a row, which alone would cap TransE at ~30k triples/s.
  """

  def _permutation(self, seed: int, epoch: int) -> np.ndarray:
    cache = self.__dict__.setdefault('_permutations', {})
    if (seed, epoch) not in cache:
      if len(cache) >= 4:  # a batch spans at most two epochs (unless batch > rows)
        cache.pop(next(iter(cache)))
      cache[seed, epoch] = np.random.default_rng([seed, epoch]).permutation(len(self))
    return cache[seed, epoch]

  def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
            process_count: int = 1) -> dict[str, np.ndarray]:
    n = per_process(batch_size, process_index, process_count)
    if not len(self):
      raise UserError('Cannot draw batches from an empty dataset.')
    start = step * batch_size + process_index * n
    positions = start + np.arange(n, dtype=np.int64)
    epochs, offsets = np.divmod(positions, len(self))
    rows = np.empty((n,), np.int64)
    for epoch in np.unique(epochs):
      at = epochs == epoch
      rows[at] = self._permutation(seed, int(epoch))[offsets[at]]
    return self.take(rows)


def triple_rows(triples: np.ndarray, info: dict | None = None) -> TripleRows:
  """Rows 'heads', 'relations', 'tails', 'valid' (=1) of int triples [N, 3]."""
  t = np.asarray(triples, np.int32).reshape(-1, 3)
  return TripleRows(dict(heads=t[:, 0], relations=t[:, 1], tails=t[:, 2],
                         valid=np.ones((len(t),), np.int32)), info=info)


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
  rows = triple_rows(splits['train'], info=dict(graph.info))
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

  heldout = lambda split: {'kg': triple_rows(splits[SPLITS[split]])}
  evaluators = (('link_prediction', config.transe.eval_every, evaluator, log),)
  return train.Task('transe', model, config.model, objective, rows, heldout, evaluators,
                    report=report)


def transe_job(config, workdir: str) -> dict:
  """Trains TransE (resuming), evaluates test link prediction, exports the vectors."""
  t0 = time.time()
  config = run.resolve(config)
  if config.model.name != 'transe':
    raise UserError(f"job=transe trains model.name='transe' (it is {config.model.name!r}); "
                    'configs/transe.py sets it')
  workdir = run.workdir_path(workdir)
  graph = kg.load_graph(config.kg)
  check_workdir(workdir, graph)
  task = make_task(config, graph, workdir)
  results = train.train_and_evaluate(config, workdir, task,
                                     GraphVocab(graph.fingerprint, len(graph.entities)))
  if results:
    results.update(graph=graph.fingerprint, wall_seconds=round(time.time() - t0, 1))
    run.write_results(results, workdir)
  return results
