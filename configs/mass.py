r"""MASS (Song et al., 2019): masked sequence-to-sequence pre-training, then translation.

  python -m plm.main --config=configs/mass.py --workdir=runs/mass
  python -m plm.main --config=configs/mass.py:tiny --workdir=/tmp/mass_tiny
  # supervised en->es translation from that run (params only; its vocabulary), BLEU/chrF:
  python -m plm.main --config=configs/mass.py:tiny --config.job=mt \
      --config.init_from=/tmp/mass_tiny/checkpoints --workdir=/tmp/mass_mt
  # translate a file with the fine-tuned run:
  python -m plm.main --config=configs/mass.py:tiny --config.job=translate \
      --config.decode.input=en.txt --config.decode.output=es.txt --workdir=/tmp/mass_mt

An encoder-decoder (plm/models/seq2seq.py) on the shipped English (KJV) and
Spanish (Reina-Valera 1909) Bibles, one verse a row (data.rows='sentences').
Each verse gets one contiguous span of objective.mass_span of its tokens masked
in the encoder; the decoder predicts exactly that span (plm/objectives/mass.py).
mass_span_tokens=1 is BERT-like, mass_span=1.0 GPT-like. Language embeddings on
both sides tell the decoder which language to write.
"""
import ml_collections

from plm import configlib, models


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = configlib.base(languages=('en', 'es'))
  model = models.config('seq2seq')
  model.update({k: v for k, v in c.model.items() if k in model and k != 'name'})
  c.model = model
  c.model.num_languages = -1  # one language embedding per data.languages entry
  c.data.rows = 'sentences'  # one verse a row: a span's positions are the verse's own
  c.data.seq_len = 96  # tokens per verse with bos/eos; longer verses are left out and counted
  c.objective.name = 'mass'
  c.objective.num_predictions = 48  # decoder slots >= the largest span (half of 94 tokens)
  c.objective.mass_span = 0.5  # the paper's k = 50%

  c.mt = ml_collections.ConfigDict()  # the mt (fine-tune) and translate jobs (plm/jobs/mt.py)
  c.mt.source = 'en'  # source language (one of data.languages)
  c.mt.target = 'es'  # target language
  c.mt.train_pairs = 0  # training pairs, a seed-fixed sample (low-resource MT); 0 = all
  c.mt.unsupervised = False  # True: no pairs, dae + back-translation on disjoint chapters
  c.mt.src_len = 96  # source row with bos/eos; longer pairs are left out and counted
  c.mt.tgt_len = 96  # target row with bos/eos
  c.decode.beam_size = 4  # MASS's beam (the decode.* fields: plm/configlib.py)
  c.decode.no_repeat_ngram = 0
  c.decode.max_target_len = 96  # target tokens decoded per sentence, with eos
  if arg == 'tiny':
    configlib.shrink_for_cpu(c)
    c.objective.num_predictions = 32  # the largest span of a 64-token row
    c.mt.src_len = c.mt.tgt_len = c.decode.max_target_len = 64
    c.decode.max_test_examples = 64
  elif arg:
    raise ValueError(f"configs/mass.py:{arg}: unknown variant; use '' or 'tiny'")
  return c
