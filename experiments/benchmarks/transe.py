r"""TransE training throughput, plm vs pykeen, side by side; then plm's filtered MRR,
wall time and evaluation memory on the same graph.

  python experiments/benchmarks/transe.py                  # WN18RR-sized WordNet graph
  python experiments/benchmarks/transe.py --graph=wordnet  # the whole shipped graph
  python experiments/benchmarks/transe.py --pykeen_minutes=12  # + pykeen's MRR and memory
  python experiments/benchmarks/transe.py --no_pykeen --steps=0  # plm throughput only

Graph: 'wn18rr_sized' (default) is the shipped WordNet graph (plm/data/kg.py) cut to
WN18RR's entity count: the 40,943 entities of highest train degree and every triple
between two of them, written as TSV files and read back through kg.source='tsv' (valid/
test triples whose entity lost all its train triples are skipped and counted by the
loader). 'wordnet' is the whole shipped graph (112,199 entities).

Throughput: both train TransE with the same split, dimension, L1 distance, batch of
positive triples, negatives per positive (head or tail corrupted, 'bern' by default),
margin ranking loss (mean over pairs), Adam (lr, b1 0.9, b2 0.999, eps 1e-8, no decay)
and unit-norm entities, on torch's / XLA's CPU threads (2 here). plm runs its jitted
train step on batches from its triple rows (as the loop does; schedule warmup only); pykeen
runs its SLCWATrainingLoop one epoch per block (continue_training), timed from its first
batch's end to its last (its per-call setup is printed apart and not counted). Blocks
alternate, so load hits both alike; each side's triples/s is the median block.

Quality: plm then runs the transe job itself (plm/jobs/transe.py: the one loop, test
link prediction, export) for --steps steps, timing the whole job; peak resident memory
during the test evaluation is sampled from /proc every 20 ms.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import transe as transe_config  # pylint: disable=wrong-import-position
from plm import train  # pylint: disable=wrong-import-position
from plm.data import kg  # pylint: disable=wrong-import-position
from plm.jobs import transe as job  # pylint: disable=wrong-import-position


def rss_mb() -> float:
  with open('/proc/self/status', encoding='ascii') as f:
    return next(int(line.split()[1]) for line in f if line.startswith('VmRSS')) / 1024


class PeakMemory:
  """Peak resident memory (MB) of this process while the block runs, sampled."""

  def __enter__(self):
    self.start, self.peak, self.done = rss_mb(), rss_mb(), False
    def watch():
      while not self.done:
        self.peak = max(self.peak, rss_mb())
        time.sleep(0.02)
    self.thread = threading.Thread(target=watch, daemon=True)
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.done = True
    self.thread.join()
    self.peak = max(self.peak, rss_mb())


def wn18rr_sized(out_dir: str, size: int = 40943) -> str:
  """The shipped graph's `size` highest-degree entities and their triples, as TSV files."""
  g = kg.load_graph(kg.kg_config())
  train_triples = g.splits['train']
  degree = np.bincount(train_triples[:, [0, 2]].ravel(), minlength=len(g.entities))
  keep = np.zeros(len(g.entities), bool)
  keep[np.argsort(-degree, kind='stable')[:size]] = True
  os.makedirs(out_dir, exist_ok=True)
  for split in ('train', 'valid', 'test'):
    t = g.splits[split]
    t = t[keep[t[:, 0]] & keep[t[:, 2]]]
    with open(os.path.join(out_dir, f'{split}.txt'), 'w', encoding='utf-8') as f:
      f.writelines(f'{g.entities[h]}\t{g.relations[r]}\t{g.entities[x]}\n'
                   for h, r, x in t.tolist())
  return out_dir


def make_config(args, graph_dir: str, tmp: str):
  c = transe_config.get_config()
  if graph_dir:  # built by TFDS in the temporary directory, removed at the end
    c.kg.source, c.kg.dir, c.kg.tfds_dir = 'tsv', graph_dir, os.path.join(tmp, 'tfds')
  c.model.dim, c.model.norm = args.dim, 1
  c.objective.update(negatives=args.negatives, margin=args.margin, sampler=args.sampler)
  c.optim.lr = args.lr
  c.train.batch_size, c.train.steps = args.batch, args.steps
  c.train.log_every, c.train.checkpoint_every = 500, 10 ** 9
  c.transe.eval_every = 0
  return c


class PlmRunner:
  """plm's jitted train step on the loop's batches, `steps` at a time."""

  def __init__(self, config, graph, workdir):
    self.task = job.make_task(config, graph, workdir)
    self.s = train.setup(config, self.task)
    self.batch, self.seed, self.step = config.train.batch_size, config.seed, 0
    self.state = self.s.init(jax.random.PRNGKey(0), self.s.extras)
    t0 = time.time()
    self.run(1)
    self.compile_s = time.time() - t0

  def run(self, steps: int) -> float:
    """Seconds for `steps` steps (host batches included), finished on the device."""
    t0 = time.time()
    with jax.set_mesh(self.s.mesh):
      for _ in range(steps):
        local = self.task.train_rows.batch(self.step, self.batch, seed=self.seed)
        self.state, metrics = self.s.train_step(self.state, self.s.extras, self.s.put(local))
        self.step += 1
      jax.block_until_ready(metrics)
    self.loss = float(metrics['loss'])
    return time.time() - t0


class PykeenRunner:
  """pykeen's sLCWA training loop, one epoch per call."""

  def __init__(self, args, graph):
    import torch  # pylint: disable=g-import-not-at-top
    from pykeen import losses, models, training  # pylint: disable=g-import-not-at-top
    from pykeen.training.callbacks import TrainingCallback  # pylint: disable=g-import-not-at-top
    from pykeen.triples import TriplesFactory  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    self.torch = torch
    self.graph = graph
    self.factories = {  # the very triples and ids plm trains and tests on
        split: TriplesFactory(torch.as_tensor(graph.splits[split], dtype=torch.long),
                              entity_to_id={k: i for i, k in enumerate(graph.entities)},
                              relation_to_id={k: i for i, k in enumerate(graph.relations)})
        for split in ('train', 'valid', 'test')}
    self.factory = self.factories['train']
    self.model = models.TransE(triples_factory=self.factory, embedding_dim=args.dim,
                               scoring_fct_norm=1, loss=losses.MarginRankingLoss(args.margin),
                               random_seed=0)
    optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)
    sampler = {'uniform': 'basic', 'bern': 'bernoulli'}[args.sampler]
    self.loop = training.SLCWATrainingLoop(
        model=self.model, triples_factory=self.factory, optimizer=optimizer,
        negative_sampler=sampler, negative_sampler_kwargs=dict(num_negs_per_pos=args.negatives))
    self.batch, self.times, self.trained, self.epochs = args.batch, [], False, 0

    outer = self

    class Clock(TrainingCallback):
      def post_batch(self, epoch, batch, **kwargs):
        outer.times.append(time.time())

    self.clock = Clock

  def train_for(self, minutes: float) -> int:
    """Whole epochs until `minutes` have passed; returns the epochs run."""
    t0, epochs = time.time(), 0
    while time.time() - t0 < 60 * minutes:
      self.epoch()
      epochs += 1
    return epochs

  def evaluate(self) -> dict:
    """pykeen's filtered rank-based test metrics (both sides, realistic ranks)."""
    from pykeen.evaluation import RankBasedEvaluator  # pylint: disable=g-import-not-at-top
    result = RankBasedEvaluator(filtered=True).evaluate(
        self.model, self.factories['test'].mapped_triples, use_tqdm=False,
        additional_filter_triples=[self.factories['train'].mapped_triples,
                                   self.factories['valid'].mapped_triples])
    return {k: result.get_metric(f'both.realistic.{m}') for k, m in (
        ('mrr', 'inverse_harmonic_mean_rank'), ('hits@1', 'hits_at_1'),
        ('hits@3', 'hits_at_3'), ('hits@10', 'hits_at_10'))}

  def epoch(self) -> tuple[int, float, float, float]:
    """(steps timed, seconds, setup seconds, loss) of one epoch."""
    self.times = []
    t0 = time.time()
    self.epochs += 1  # with continue_training, num_epochs counts the epochs so far too
    losses = self.loop.train(triples_factory=self.factory, num_epochs=self.epochs,
                             batch_size=self.batch,
                             use_tqdm=False, use_tqdm_batch=False, callbacks=[self.clock()],
                             continue_training=self.trained)
    self.trained = True
    return len(self.times) - 1, self.times[-1] - self.times[0], self.times[0] - t0, losses[-1]


def throughput(args, config, graph, workdir):
  plm = PlmRunner(config, graph, workdir)
  print(f'plm: compile + first step {plm.compile_s:.1f} s', flush=True)
  peer = None
  if not args.no_pykeen:
    peer = PykeenRunner(args, graph)
    steps, seconds, setup, _ = peer.epoch()  # warm-up epoch
    print(f'pykeen: warm-up epoch {steps + 1} steps in {seconds + setup:.1f} s '
          f'(setup before its first batch {setup:.1f} s)', flush=True)
  plm.run(args.block_steps)  # warm-up block
  rates = {'plm': [], 'pykeen': []}
  for block in range(args.blocks):
    seconds = plm.run(args.block_steps)
    rates['plm'].append(args.block_steps * args.batch / seconds)
    line = (f'  block {block + 1}: plm {1000 * seconds / args.block_steps:.0f} ms/step '
            f'(loss {plm.loss:.3f})')
    if peer:
      steps, seconds, setup, loss = peer.epoch()
      rates['pykeen'].append(steps * args.batch / seconds)
      line += (f', pykeen {1000 * seconds / steps:.0f} ms/step over {steps} steps (loss '
               f'{loss:.3f}, setup {setup:.1f} s), ratio '
               f"{rates['plm'][-1] / rates['pykeen'][-1]:.2f}x")
    print(line + f'; load {os.getloadavg()[0]:.2f}', flush=True)
  return {k: float(np.median(v)) for k, v in rates.items() if v}, peer


def quality(config, graph, workdir):
  """The transe job's whole run: wall time, test link prediction, evaluation memory."""
  task = job.make_task(config, graph, workdir)
  name, every, evaluator, log = task.evaluators[0]
  memory = {}

  def measured(params, split):
    with PeakMemory() as m:
      table = evaluator(params, split)
    memory[split] = (m.start, m.peak)
    return table

  task = task._replace(evaluators=((name, every, measured, log),))
  t0 = time.time()
  results = train.train_and_evaluate(config, workdir, task)
  return results, time.time() - t0, memory['test']


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--graph', default='wn18rr_sized', choices=('wn18rr_sized', 'wordnet'))
  p.add_argument('--dim', type=int, default=100)
  p.add_argument('--batch', type=int, default=4096)
  p.add_argument('--negatives', type=int, default=16)
  p.add_argument('--margin', type=float, default=10.0)
  p.add_argument('--lr', type=float, default=3e-3)
  p.add_argument('--sampler', default='bern', choices=('uniform', 'bern'))
  p.add_argument('--blocks', type=int, default=3, help='timed blocks per implementation')
  p.add_argument('--block_steps', type=int, default=19, help='plm steps per block')
  p.add_argument('--steps', type=int, default=4000, help='plm training steps for MRR; 0 = skip')
  p.add_argument('--no_pykeen', action='store_true')
  p.add_argument('--pykeen_minutes', type=float, default=0.0,
                 help='> 0: train pykeen on for this long, then its filtered test MRR and memory')
  args = p.parse_args()

  tmp = tempfile.mkdtemp(prefix='transe_bench_')
  try:
    graph_dir = wn18rr_sized(os.path.join(tmp, 'graph')) if args.graph == 'wn18rr_sized' else ''
    config = make_config(args, graph_dir, tmp)
    graph = kg.load_graph(config.kg)
    print(f'machine: {os.uname().machine} {os.cpu_count()} CPUs (affinity '
          f'{len(os.sched_getaffinity(0))}), load {os.getloadavg()[0]:.2f}; jax {jax.__version__} '
          f'({jax.default_backend()})' + ('' if args.no_pykeen else
                                          f', pykeen {version("pykeen")}, torch {version("torch")}'))
    print(f"graph {args.graph}: {len(graph.entities)} entities, {len(graph.relations)} relations, "
          f"train {len(graph.splits['train'])}, valid {len(graph.splits['valid'])}, test "
          f"{len(graph.splits['test'])} (fingerprint {graph.fingerprint})")
    print(f'settings: dim {args.dim}, L1, batch {args.batch} positives, {args.negatives} '
          f'negatives each ({args.sampler}), margin {args.margin}, Adam lr {args.lr}', flush=True)
    rates, peer = throughput(args, config, graph, os.path.join(tmp, 'speed'))
    print(f'\nmedian of {args.blocks} blocks; load now {os.getloadavg()[0]:.2f}\n')
    print('| implementation | positive triples/s | ratio |\n|---|---|---|')
    base = rates.get('pykeen', rates['plm'])
    for name, rate in rates.items():
      print(f'| {name} | {rate:,.0f} | {rate / base:.2f}x |')
    if args.steps:
      print(f'\nplm transe job, {args.steps} steps (load {os.getloadavg()[0]:.2f}):', flush=True)
      results, wall, (start, peak) = quality(config, graph, os.path.join(tmp, 'run'))
      m = results['link_prediction']['both']
      print(f"\nfiltered test MRR {m['mrr']:.4f}, Hits@1 {m['hits@1']:.4f}, Hits@3 "
            f"{m['hits@3']:.4f}, Hits@10 {m['hits@10']:.4f} ({m['count']} ranks); job wall "
            f'{wall / 60:.1f} min; test evaluation {results["link_prediction"]["seconds"]} s, '
            f'resident memory {start:,.0f} MB before, peak {peak:,.0f} MB; load now '
            f'{os.getloadavg()[0]:.2f}')
    if peer and args.pykeen_minutes:
      t0 = time.time()
      epochs = peer.train_for(args.pykeen_minutes)
      wall = time.time() - t0
      with PeakMemory() as mem:
        t1 = time.time()
        m = peer.evaluate()
      print(f"\npykeen, {epochs} more epochs in {wall / 60:.1f} min: filtered test MRR "
            f"{m['mrr']:.4f}, Hits@1 {m['hits@1']:.4f}, Hits@3 {m['hits@3']:.4f}, Hits@10 "
            f"{m['hits@10']:.4f}; evaluation {time.time() - t1:.1f} s, resident memory "
            f'{mem.start:,.0f} MB before, peak {mem.peak:,.0f} MB; load now '
            f'{os.getloadavg()[0]:.2f}')
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def version(package: str) -> str:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  return metadata.version(package)


if __name__ == '__main__':
  main()
