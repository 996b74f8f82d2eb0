r"""UNILM (Dong et al., 2019): one encoder trained under four attention masks.

  python -m plm.main --config=configs/unilm.py --workdir=runs/unilm
  python -m plm.main --config=configs/unilm.py:tiny --workdir=/tmp/unilm_tiny

A BERT-style encoder (segment embeddings, no language embeddings) on the shipped
English (KJV) Bible, with configs/xlm.py's size and schedule. Each row is
trained bidirectionally, left to right, right to left or as seq2seq
(`objective.unilm_mix`, in that order; the paper's 1/3, 1/6, 1/6, 1/3), with
the cloze task of plm/objectives/unilm.py: 15% of tokens in units that are a
bigram or trigram `objective.ngram_prob` of the time. `:tiny` is a
seconds-long CPU variant for tests.
"""
import ml_collections
from ml_collections import config_dict

from plm.partitioning import DEFAULT_RULES


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.job = 'train'  # train | evaluate
  c.seed = 0  # parameters, masking, dropout and data order all derive from it
  c.init_from = ''  # another run's checkpoints/ dir to start from (params only)

  c.data = ml_collections.ConfigDict()
  c.data.corpus = 'bible'  # 'bible' (shipped) or 'textdir' (data.text_dir/<lang>.<split>.txt)
  c.data.languages = ('en',)  # language codes; UNILM is monolingual
  c.data.text_dir = ''  # for corpus='textdir'
  c.data.tfds_dir = '~/tensorflow_datasets'  # where TFDS builds the corpus (array_record)
  c.data.vocab_path = ''  # sentencepiece model; '' = train one into {workdir}/vocab
  c.data.vocab_size = 8000  # BPE pieces
  c.data.seq_len = 128  # tokens per packed row

  c.model = ml_collections.ConfigDict()
  c.model.name = 'encoder_lm'  # plm.models.NAMES
  c.model.size = 'mini'  # plm/models/sizes.py: test, tiny, mini, small, medium, base, large, xlm
  c.model.layers = config_dict.placeholder(int)  # overrides the size table when set
  c.model.hidden = config_dict.placeholder(int)
  c.model.heads = config_dict.placeholder(int)
  c.model.ff = config_dict.placeholder(int)
  c.model.activation = 'gelu'  # gelu (erf, as BERT/UNILM), gelu_tanh, relu
  c.model.dropout = 0.1
  c.model.attention_dropout = 0.1
  c.model.max_len = 256  # longest sequence the position table holds
  c.model.num_segments = 2  # token types: 1 = seq2seq target, 0 = everything else
  c.model.num_languages = 0  # no language embeddings (the objective passes no langs)
  c.model.positions = 'learned'  # learned | sinusoidal
  c.model.post_ln = True  # BERT/UNILM post-LN; False = pre-LN
  c.model.remat = False  # recompute activations in backward (saves memory)

  c.objective = ml_collections.ConfigDict()
  c.objective.name = 'unilm'  # mlm | clm | unilm
  c.objective.mask_rate = 0.15  # share of tokens predicted (on average)
  c.objective.num_predictions = 24  # prediction slots per row (>= mask_rate * seq_len + 2)
  c.objective.unilm_mix = (1 / 3, 1 / 6, 1 / 6, 1 / 3)  # bidir, l2r, r2l, seq2seq
  c.objective.ngram_prob = 0.2  # a masked unit is a bigram or trigram (half each), else 1 token

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3  # peak learning rate
  c.optim.warmup_steps = 60
  c.optim.total_steps = steps = config_dict.FieldReference(600)  # decay horizon; follows train.steps
  c.optim.schedule = 'linear'  # linear | cosine decay after warmup
  c.optim.b1 = 0.9
  c.optim.b2 = 0.98
  c.optim.eps = 1e-6
  c.optim.weight_decay = 0.01
  c.optim.grad_clip = 1.0  # global-norm clipping

  c.train = ml_collections.ConfigDict()
  c.train.steps = steps  # optimizer steps (shared reference with optim.total_steps)
  c.train.batch_size = 32  # global rows per step
  c.train.accum_steps = 1  # micro-batches per step (gradient accumulation)
  c.train.log_every = 50
  c.train.eval_every = 200  # held-out (validation) evaluation period
  c.train.eval_batch_size = 64
  c.train.checkpoint_every = 100
  c.train.keep_checkpoints = 3
  c.train.nonfinite = 'stop'  # on a NaN/inf loss: 'stop' naming the step, or 'skip' the update

  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, model=1))  # -1 = all devices
  c.rules = DEFAULT_RULES  # logical axis -> mesh axis (plm/partitioning.py)

  if arg == 'tiny':
    c.data.vocab_size = 1000
    c.data.seq_len = 64
    c.model.size = 'test'
    c.model.max_len = 64
    c.objective.num_predictions = 12
    c.model.dropout = 0.0  # a few hundred steps on a 2-layer model: nothing to regularize
    c.model.attention_dropout = 0.0
    c.optim.lr = 5e-3
    c.optim.warmup_steps = 20
    c.train.steps = 400
    c.train.batch_size = 32
    c.train.log_every = 50
    c.train.eval_every = 200
    c.train.checkpoint_every = 100
  elif arg:
    raise ValueError(f"configs/unilm.py:{arg}: unknown variant; use '' or 'tiny'")
  return c
