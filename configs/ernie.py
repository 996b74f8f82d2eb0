r"""ERNIE (Zhang et al., 2019, THU): a BERT whose upper layers fuse WordNet entities (TransE
vectors) into the tokens they are linked to; MLM + NSP + dEA pre-training.

  python -m plm.main --config=configs/transe.py --workdir=runs/transe       # entities.npz
  python -m plm.main --config=configs/ernie.py --workdir=runs/ernie \
      --config.ernie.entity_vectors=runs/transe/entities.npz
  # CPU-sized: a tiny TransE, then ERNIE on its vectors
  python -m plm.main --config=configs/transe.py:tiny --workdir=/tmp/transe_tiny
  python -m plm.main --config=configs/ernie.py:tiny --workdir=/tmp/ernie_tiny \
      --config.ernie.entity_vectors=/tmp/transe_tiny/entities.npz
  # the BERT baseline: the same model, rows and steps without entities
  python -m plm.main --config=configs/ernie.py:tiny --config.ernie.entities=False \
      --config.ernie.entity_vectors=/tmp/transe_tiny/entities.npz --workdir=/tmp/bert_tiny
  # fine-tuning: entity typing or relation classification (plm/jobs/ernie.py)
  python -m plm.main --config=configs/ernie.py:tiny --config.job=ernie_finetune \
      --config.finetune.task=typing --config.init_from=/tmp/ernie_tiny/checkpoints \
      --config.ernie.entity_vectors=/tmp/transe_tiny/entities.npz --workdir=/tmp/ernie_typing

Data: KJV verse pairs and WordNet (definition, example) pairs, linked to the shipped WordNet
graph (plm/data/ernie.py). The paper's ERNIE-Base is N=6 T-encoder + M=6 K-encoder layers.
"""
import ml_collections

from plm import configlib, models
from plm.data import kg


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = configlib.base()
  c.job = 'ernie'  # pre-training (plm/jobs/ernie.py); ernie_finetune fine-tunes
  c.kg = kg.kg_config()  # the graph entities are linked to (the TransE export's)
  c.model = models.config('ernie')
  c.model.size = 'mini'  # T-encoder shape (plm/models/sizes.py); model.layers = N
  c.model.knowledge_layers = 2  # M aggregator layers
  c.objective.name = 'ernie'  # heads mlm, nsp, dea (plm/objectives/ernie.py)
  c.ernie = ml_collections.ConfigDict()
  c.ernie.entity_vectors = ''  # TransE export of the kg.* graph ({transe workdir}/entities.npz)
  c.ernie.entities = True  # False: no entity reaches the model, no dEA (the BERT baseline)
  c.ernie.corpus_dir = ''  # cache of the linked corpus; '' = {workdir}/linked
  c.ernie.max_pairs = 0  # sentence pairs per source (Bible, glosses); 0 = all
  c.ernie.max_examples = 0  # ernie_finetune: training examples (a seeded subset); 0 = all
  c.ernie.max_eval_examples = 0  # ernie_finetune: validation/test examples; 0 = all
  c.ernie.max_sentences = 0  # ernie_finetune: sentences linked per split (a seeded subset); 0 = all
  c.finetune.task = 'typing'  # ernie_finetune: typing | relation (plm/data/ernie_tasks.py)
  c.train.steps = 3000
  c.train.eval_every = 500
  if arg == 'tiny':
    configlib.shrink_for_cpu(c)
    c.model.knowledge_layers = 1
    c.ernie.max_pairs = 2000
    c.ernie.max_examples = 2000
    c.ernie.max_eval_examples = 500
    c.train.steps = 200
    c.train.eval_every = 0
    c.finetune.steps = 150
  elif arg:
    raise ValueError(f"configs/ernie.py:{arg}: unknown variant; use '' or 'tiny'")
  return c
