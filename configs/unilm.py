r"""UNILM (Dong et al., 2019): one encoder trained under four attention masks.

  python -m plm.main --config=configs/unilm.py --workdir=runs/unilm
  python -m plm.main --config=configs/unilm.py:tiny --workdir=/tmp/unilm_tiny
  # fine-tune that run (params only; its vocabulary) to genre classification and KJV->WEB:
  python -m plm.main --config=configs/unilm.py:tiny --config.job=classify \
      --config.init_from=/tmp/unilm_tiny/checkpoints --workdir=/tmp/unilm_cls
  python -m plm.main --config=configs/unilm.py:tiny --config.job=generate \
      --config.init_from=/tmp/unilm_tiny/checkpoints --workdir=/tmp/unilm_gen

A BERT-style encoder (segment embeddings, no language embeddings) on the shipped
English (KJV) Bible, with the shared size and schedule of plm/configlib.py. Each row is
trained bidirectionally, left to right, right to left or as seq2seq
(`objective.unilm_mix`, in that order; the paper's 1/3, 1/6, 1/6, 1/3), with
the cloze task of plm/objectives/unilm.py: 15% of tokens in units that are a
bigram or trigram `objective.ngram_prob` of the time. `:tiny` is a
seconds-long CPU variant for tests. The fine-tuning (`finetune.*`) and search
(`decode.*`: beam 5, no repeated trigram) fields are in plm/configlib.py;
`job=generate` is UNILM's seq2seq fine-tuning (section 3.2),
`job=classify` its first-token classifier. KJV -> WEB is English modernisation;
`--config.finetune.target=es_rv1909 --config.data.languages="('en','es')"` makes
it translation (the vocabulary must then be trained on both languages).
"""
import ml_collections

from plm import configlib


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = configlib.base(languages=('en',))  # UNILM is monolingual
  c.model.num_segments = 2  # token types: 1 = seq2seq target, 0 = everything else
  c.model.num_languages = 0  # no language embeddings
  c.objective.name = 'unilm'  # mlm | clm | unilm
  c.objective.num_predictions = 24  # prediction slots per row (>= mask_rate * seq_len + 2)
  c.finetune.skip_long = True  # 2.5% of the KJV/WEB training pairs exceed 128 tokens
  if arg == 'tiny':
    configlib.shrink_for_cpu(c)
  elif arg:
    raise ValueError(f"configs/unilm.py:{arg}: unknown variant; use '' or 'tiny'")
  return c
