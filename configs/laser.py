r"""LASER (Artetxe & Schwenk, 2019): one BiLSTM encoder for every language, max-pooled
sentence vectors, trained through an LSTM decoder that translates them.

  python -m plm.main --config=configs/laser.py --workdir=runs/laser
  python -m plm.main --config=configs/laser.py:tiny --workdir=/tmp/laser_tiny
  # sentence vectors of a file (max-pool of the BiLSTM), and bitext mining of two files:
  python -m plm.main --config=configs/laser.py:tiny --config.job=embed \
      --config.embed.input=en.txt --config.embed.output=en.npy --workdir=/tmp/laser_tiny
  python -m plm.main --config=configs/laser.py:tiny --config.job=mine --config.mine.src=en.txt \
      --config.mine.tgt=es.txt --config.mine.output=mined.tsv --workdir=/tmp/laser_tiny

Trains on the shipped Bibles' aligned verses in four directions (plm/jobs/laser.py):
en (KJV) -> es, es -> en, en_web (World English Bible) -> es and en_web -> en, so,
as in the paper, every source is translated into English and Spanish. The decoder
is told the target language (model.num_languages = one per data.languages); the
encoder is never told the source language. User pairs: data.parallel_dir.
"""
import ml_collections

from plm import configlib, models


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = configlib.base(languages=('en', 'es', 'en_web'))
  c.job = 'laser'  # LASER's training (plm/jobs/laser.py); embed, mine and classify work too
  c.model = models.config('laser')
  c.model.num_languages = -1  # target-language embeddings for the decoder
  c.objective.name = 'translation'  # the 'mt' head (plm/objectives/translation.py)
  c.data.seq_len = 64  # the vocabulary job's row length; pairs use laser.src_len/tgt_len
  c.laser = ml_collections.ConfigDict()
  c.laser.directions = ('en-es', 'es-en', 'en_web-es', 'en_web-en')  # 'src-tgt' codes
  c.laser.src_len = 64  # source row with bos/eos; longer pairs are left out and counted
  c.laser.tgt_len = 64  # target row with bos/eos
  c.embed.pooling = 'max'  # LASER's sentence vector: max-pool of the last BiLSTM layer
  c.optim.lr = 2e-3
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 0.0
  c.train.steps = 6000
  c.train.batch_size = 64
  c.train.eval_every = 1000
  c.train.retrieval_every = 1000  # test-verse style retrieval (P@1 = 1 - xsim) on validation
  c.retrieval.max_pairs = 1000
  if arg == 'tiny':
    c.data.vocab_size = 1000
    c.model.update(embed_dim=32, layers=1, hidden=32, decoder_hidden=64, dropout=0.0)
    c.laser.src_len = c.laser.tgt_len = 48
    c.optim.lr = 5e-3
    c.optim.warmup_steps = 20
    c.train.steps = 300
    c.train.batch_size = 32
    c.train.eval_every = 0
    c.train.retrieval_every = 0
    c.retrieval.max_pairs = 200
  elif arg:
    raise ValueError(f"configs/laser.py:{arg}: unknown variant; use '' or 'tiny'")
  return c
