r"""ERNIE 2.0 (Sun et al., 2020): continual multi-task pre-training with task embeddings.

  python -m plm.main --config=configs/ernie2.py --workdir=runs/ernie2
  python -m plm.main --config=configs/ernie2.py:tiny --workdir=/tmp/ernie2_tiny
  # fine-tune it (params only; its vocabulary) to genre classification:
  python -m plm.main --config=configs/ernie2.py:tiny --config.job=classify \
      --config.init_from=/tmp/ernie2_tiny/checkpoints --workdir=/tmp/ernie2_cls

A BERT-style encoder with task embeddings (`model.num_tasks`) and one head per task, on the
shipped KJV Bible (chapters = documents, verses = sentences) with the WEB as the second
translation for IR relevance and WordNet entities for knowledge masking. The continual
schedule (`ernie2.stages`, plm/data/schedule.py) adds tasks stage by stage, every stage
training its new tasks with all earlier ones, one task a batch, steps shared as configured;
train.steps must equal the stages' sum. `:tiny` runs two stages in about two minutes on a
CPU (most of it building the tasks: linking WordNet entities in every KJV verse);
`:tiny_all`, `:tiny_masking`, `:tiny_sequential` and `:tiny_together` are
experiments/ernie2's arms.
"""
import ml_collections

from plm import configlib
from plm import models

# The paper's three groups, one stage each (word-, structure-, semantic-aware), each
# stage keeping the earlier tasks; shares are of the stage's steps.
WORD = dict(knowledge_masking=2.0, capitalization=1.0, token_document=1.0)
STRUCTURE = dict(WORD, sentence_reorder=1.0, sentence_distance=1.0)
SEMANTIC = dict(STRUCTURE, discourse=1.0, ir_relevance=1.0)
# The paper's two baselines (its Table 1): each stage trains only its new tasks
# (sequential, continual=False), or every task from the first step (multi-task).
SEQUENTIAL = (WORD, dict(sentence_reorder=1.0, sentence_distance=1.0),
              dict(discourse=1.0, ir_relevance=1.0))


ARMS = ('tiny_all', 'tiny_masking', 'tiny_sequential', 'tiny_together')


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = configlib.base(languages=('en',))
  c.job = 'ernie2'
  c.model = models.config('ernie2')
  c.model.num_segments = 2  # token types: alternate segments of a row are 0 / 1
  c.model.num_tasks = 7  # one task embedding per ERNIE 2.0 task
  c.objective.num_predictions = 24  # knowledge masking: >= mask_rate * seq_len + 4
  c.objective.ngram_prob = 0.2  # knowledge masking: phrase-level units of 2-3 tokens
  c.ernie2 = ml_collections.ConfigDict()
  c.ernie2.translation = 'en_kjv'  # the Bible the tasks read (plm/data/bible.py)
  c.ernie2.parallel = 'en_web'  # ir_relevance: the second translation of the same verses
  c.ernie2.max_chapters = 0  # the first N chapters of each split only (quick tests); 0 = all
  c.ernie2.entity_share = 0.5  # knowledge masking: at most this share of masked tokens in entities
  c.ernie2.entity_prob = 0.5  # knowledge masking: chance an entity mention is drawn
  # the continual schedule: ({'steps': n, 'tasks': {task: share}}, ...); task ids follow the
  # order in which tasks first appear
  c.ernie2.stages = (dict(steps=200, tasks=WORD), dict(steps=200, tasks=STRUCTURE),
                     dict(steps=200, tasks=SEMANTIC))
  # True: every stage keeps the earlier stages' tasks; False lets a stage drop them
  c.ernie2.continual = True
  c.train.steps = 600
  c.train.eval_every = 0  # held-out table per task at the end
  if arg == 'tiny':
    configlib.shrink_for_cpu(c)
    c.model.num_tasks = 4
    c.objective.num_predictions = 14
    c.ernie2.stages = (dict(steps=60, tasks=dict(knowledge_masking=1.0, capitalization=1.0)),
                       dict(steps=60, tasks=dict(knowledge_masking=1.0, capitalization=1.0,
                                                 sentence_distance=1.0, ir_relevance=1.0)))
    c.train.steps = 120
    c.train.eval_every = 0
    c.train.log_every = 20
    c.train.checkpoint_every = 60
  elif arg in ARMS:  # experiments/ernie2: CPU-sized, 600 steps
    configlib.shrink_for_cpu(c)
    c.objective.num_predictions = 14
    if arg == 'tiny_masking':  # the single-task arm: knowledge masking alone, same steps
      c.model.num_tasks = 1
      c.ernie2.stages = (dict(steps=600, tasks=dict(knowledge_masking=1.0)),)
    elif arg == 'tiny_sequential':  # each stage its new tasks only: forgetting
      c.ernie2.continual = False
      c.ernie2.stages = tuple(dict(steps=200, tasks=t) for t in SEQUENTIAL)
    elif arg == 'tiny_together':  # every task from the first step, one stage
      c.ernie2.stages = (dict(steps=600, tasks=SEMANTIC),)
    c.train.steps = 600
    c.train.eval_every = 0
    c.train.log_every = 100
    c.train.checkpoint_every = 200
  elif arg:
    raise ValueError(f"configs/ernie2.py:{arg}: unknown variant; use '', 'tiny' or one of "
                     f'{ARMS}')
  return c
