r"""TransE (Bordes et al., 2013) on a knowledge graph: the entity vectors ERNIE reads.

  python -m plm.main --config=configs/transe.py --workdir=runs/transe
  python -m plm.main --config=configs/transe.py --config.kg.source=tsv \
      --config.kg.dir=my_graph/ --workdir=runs/my_graph    # train.txt/valid.txt/test.txt
  python -m plm.main --config=configs/transe.py:tiny --workdir=/tmp/transe_tiny

Trains on the shipped WordNet graph (WN18RR-style split, plm/data/kg.py) or a user's
TSV graph through the one loop (plm/jobs/transe.py), prints filtered MRR and
Hits@1/3/10 on both sides (valid every transe.eval_every steps, test at the end,
results.json) and writes the unit-norm entity vectors to {workdir}/entities.npz.
The defaults reach filtered MRR >= 0.20 on a WN18RR-sized graph in under 15 minutes
on a 2-core CPU (experiments/ernie/kg.md).
"""
import ml_collections

from plm import configlib, models
from plm.data import kg


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = configlib.base()
  c.job = 'transe'
  c.kg = kg.kg_config()  # which graph: kg.source ('wordnet' | 'tsv'), kg.dir, kg.unseen, ...
  c.model = models.config('transe')
  c.model.dim = 100  # entity and relation vector size
  c.model.norm = 1  # L1 distance (the paper's WordNet choice)
  c.objective.name = 'transe'  # margin ranking, head 'transe' (plm/objectives/transe.py)
  c.objective.negatives = 16  # corruptions per positive triple
  # the hinge max(0, margin - s_pos + s_neg); L1 distances of random unit vectors in 100
  # dims are ~11, and margins 9-11 beat 6-7 by 0.08 MRR on WordNet (experiments/ernie/kg.md)
  c.objective.margin = 10.0
  c.objective.sampler = 'bern'  # which side to corrupt: 'uniform' (1/2) or 'bern' (Wang 2014)
  c.optim.lr = 3e-3  # Adam (plm's AdamW without decay)
  c.optim.warmup_steps = 100
  c.optim.schedule = 'linear'
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.0  # the unit-norm constraint is the regulariser
  c.optim.grad_clip = 1e9  # no clipping (Adam is scale-free; TransE's paper clips nothing)
  c.train.steps = 4000  # 190 epochs of WN18RR-sized 86k triples, 98 of the shipped graph
  c.train.batch_size = 4096  # positive triples per step
  c.train.log_every = 500
  c.train.eval_every = 0  # held-out margin loss period; link prediction is transe.eval_every
  c.train.eval_batch_size = 4096
  c.train.checkpoint_every = 1000
  c.transe = ml_collections.ConfigDict()
  c.transe.eval_every = 1000  # filtered link prediction on validation every N steps; 0 = off
  c.transe.max_valid = 0  # validation triples scored during training (the first N); 0 = all
  c.transe.eval_block = 256  # test triples ranked at once against all entities (memory knob)
  c.transe.export = ''  # .npz of entity vectors, keys and graph fingerprint; '' = {workdir}/
  if arg == 'tiny':
    c.model.dim = 32
    c.objective.margin = 2.0  # L1 distances of random unit vectors in 32 dims are ~6.4
    c.objective.negatives = 4
    c.optim.lr = 1e-2
    c.train.steps = 300
    c.train.batch_size = 256
    c.train.eval_batch_size = 256
    c.train.log_every = 100
    c.train.checkpoint_every = 300
    c.optim.warmup_steps = 20
    c.transe.eval_every = 0
    c.transe.eval_block = 64
  elif arg:
    raise ValueError(f"configs/transe.py:{arg}: unknown variant; use '' or 'tiny'")
  return c
