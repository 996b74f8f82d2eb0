r"""ERNIE-Tiny (Su et al., 2019): distil a shallow, wide student from a trained plm encoder.

  # 1. the teacher: a deep, narrow BERT on the English (KJV) Bible (or any plm encoder run)
  python -m plm.main --config=configs/tiny.py:teacher --workdir=runs/teacher
  # 2. general distillation: the student learns MLM from the teacher's soft targets,
  #    hidden states (through a learned projection) and attention distributions
  python -m plm.main --config=configs/tiny.py --config.distill.teacher=runs/teacher \
      --workdir=runs/student
  # 3. the same student without distillation (the baseline arm)
  python -m plm.main --config=configs/tiny.py --config.job=train --workdir=runs/scratch
  # 4. compress a trained run: int8 weights or pruned heads / FFN units, then the test table
  python -m plm.main --config=configs/tiny.py --config.job=compress \
      --config.compress.quantize=int8 --config.compress.source=runs/student --workdir=runs/int8

ERNIE-Tiny's student is 3 layers of 1024 against its teacher's 12 of 768; here 1 of 160
against 4 of 128 (4x shallower, 1.25x wider), scaled to a shared 2-core CPU. `:tiny` is the test-sized variant (a 2-layer
teacher of width 64, a 1-layer student of width 96); `:teacher` / `:tiny_teacher` train
the teachers. Shared fields: plm/configlib.py; distillation, quantization and pruning
fields: plm/compress/.
"""
import ml_collections

from plm import configlib
from plm.compress import config as compress_config

VARIANTS = ('', 'teacher', 'tiny', 'tiny_teacher')


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f'configs/tiny.py:{arg}: unknown variant; use one of {VARIANTS}')
  c = configlib.base(languages=('en',))
  c.job = 'train' if arg.endswith('teacher') else 'distill'
  c.data.seq_len = 64
  c.model.max_len = 64
  c.objective.num_predictions = 12
  c.train.log_every = 50
  c.train.eval_every = 0
  c.distill = compress_config.distill_config()
  # the student's own MLM loss on the true tokens beside the distillation heads (1 each)
  c.objective.loss_weights = ml_collections.ConfigDict({'mlm': 1.0})
  c.compress = compress_config.compress_config()
  if arg.startswith('tiny'):
    configlib.shrink_for_cpu(c)
    c.data.languages = ('en',)
    c.finetune.test_languages = ('en',)
    c.train.steps = 150
    c.train.eval_every = 0
    if arg == 'tiny_teacher':
      c.model.size, c.model.layers = 'test', 2  # 2 x 64, 4 heads
    else:
      c.model.size, c.model.layers, c.model.hidden, c.model.ff = 'test', 1, 96, 384
  elif arg == 'teacher':
    c.model.size = 'mini'
    c.model.layers, c.model.hidden, c.model.heads, c.model.ff = 4, 128, 4, 512
    c.train.steps = 600  # at 300 it is still below the 1-layer student (experiments/tiny)
  else:  # the student: 4x shallower, 1.25x wider, as many heads (the attention loss needs it)
    c.model.size = 'mini'
    c.model.layers, c.model.hidden, c.model.heads, c.model.ff = 1, 160, 4, 640
    c.train.steps = 300
  return c
