r"""XLM (Lample & Conneau, 2019): MLM (or CLM) over a shared BPE vocabulary.

  python -m plm.main --config=configs/xlm.py --workdir=runs/xlm
  python -m plm.main --config=configs/xlm.py:tiny --workdir=/tmp/xlm_tiny
  python -m plm.main --config=configs/xlm.py --config.data.tlm_share=0.5 --workdir=runs/xlm_tlm
  python -m plm.main --config=configs/xlm.py --config.job=vocab --workdir=runs/xlm
  # a large corpus: tokenize and pack it once (job=prepare), then stream it (grain)
  python -m plm.main --config=configs/xlm.py --config.job=prepare --config.data.corpus=textdir \
      --config.data.text_dir=~/wiki --config.data.prepared_dir=~/wiki_prepared --workdir=runs/wiki
  python -m plm.main --config=configs/xlm.py --config.data.corpus=textdir \
      --config.data.text_dir=~/wiki --config.data.prepared_dir=~/wiki_prepared --workdir=runs/wiki
  # zero-shot cross-lingual transfer: genre labels in English only, tested in en and es
  python -m plm.main --config=configs/xlm.py:tiny --config.job=classify \
      --config.init_from=/tmp/xlm_tiny/checkpoints --workdir=/tmp/xlm_zeroshot

The default trains BERT-Mini-sized XLM on the shipped English (KJV) and Spanish
(Reina-Valera 1909) Bibles on 2 CPU cores in about 17 minutes and prints a
held-out table per language. `:tiny` is a minute-long CPU variant for tests.
Shared fields and their meaning: plm/configlib.py.
"""
import ml_collections

from plm import configlib


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = configlib.base(languages=('en', 'es'))
  c.model.num_segments = 0  # XLM has no sentence A/B embedding
  c.model.num_languages = -1  # XLM's language embeddings: one per data.languages entry
  c.data.tlm_pairs = ('en-es',)  # TLM on aligned verses (en->es and es->en)
  c.data.tlm_share = 0.0  # MLM alone; 0.5 = XLM's MLM+TLM (half the rows are TLM pairs)
  c.objective.name = 'mlm'  # mlm | clm (objective.mlm_smoothing=0.5 is XLM's sampling)
  if arg == 'tiny':
    configlib.shrink_for_cpu(c)
  elif arg:
    raise ValueError(f"configs/xlm.py:{arg}: unknown variant; use '' or 'tiny'")
  return c
