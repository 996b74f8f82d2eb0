r"""A transformers checkpoint (BERT, UNILM, ERNIE 1.0/2.0, RoBERTa, XLM-R) as a plm run.

  # import: config.json + model.safetensors (+ tokenizer.json or vocab.txt) -> a plm run
  python -m plm.main --config=configs/hf.py:/path/to/hf_model --workdir=runs/minilm
  # then every job, with the model fields read from the same config.json:
  python -m plm.main --config=configs/hf.py:/path/to/hf_model --config.job=embed \
      --config.embed.input=sentences.txt --config.embed.output=vectors.npy --workdir=runs/minilm
  python -m plm.main --config=configs/hf.py:/path/to/hf_model --config.job=classify \
      --config.init_from=runs/minilm/checkpoints --config.finetune.train_file=train.tsv \
      --config.finetune.test_files=en=test.tsv --workdir=runs/minilm_cls
  # export: a plm encoder run -> a directory transformers' from_pretrained reads
  python -m plm.main --config=configs/hf.py:/path/to/hf_model --config.job=export \
      --config.export.output=/tmp/minilm_hf --workdir=runs/minilm

The argument is the transformers directory; model.* come from its config.json
(plm/convert/hf.py), data.vocab_path is its tokenizer.json (or vocab.txt). A
checkpoint with a masked-LM head (architectures ...ForMaskedLM / ...ForPreTraining)
becomes an `encoder_lm`, one without an `encoder`.
"""
import os

import ml_collections

from plm import configlib, models
from plm.convert import hf

TOKENIZER_FILES = ('tokenizer.json', 'vocab.txt')


def tokenizer_file(directory: str) -> str:
  for name in TOKENIZER_FILES:
    if os.path.isfile(os.path.join(directory, name)):
      return os.path.join(directory, name)
  raise FileNotFoundError(f'{directory} holds none of {TOKENIZER_FILES}: save the tokenizer '
                          'beside the model (tokenizer.save_pretrained(path))')


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  if not arg:
    raise ValueError('configs/hf.py needs the transformers directory: '
                     '--config=configs/hf.py:/path/to/hf_model')
  source = os.path.abspath(os.path.expanduser(arg))
  cfg = hf.read_config(source)
  kw = hf.encoder_kwargs(cfg)
  c = configlib.base(languages=('en',))
  c.job = 'convert'
  heads = ('ForMaskedLM', 'ForPreTraining')
  lm = any(a.endswith(heads) for a in cfg.get('architectures') or ())
  c.model = models.config('encoder_lm' if lm else 'encoder')
  c.model.size = 'base'  # every shape field is set below; the size table is not read
  for key in ('layers', 'hidden', 'heads', 'ff', 'activation', 'dropout', 'attention_dropout',
              'max_len', 'num_segments', 'num_tasks', 'positions', 'post_ln', 'ln_eps'):
    c.model[key] = kw[key]
  c.data.vocab_path = tokenizer_file(source)
  c.data.vocab_size = kw['vocab_size']
  c.data.seq_len = min(128, kw['max_len'])
  c.finetune.seq_len = min(128, kw['max_len'])
  c.finetune.lr = 5e-5  # BERT's fine-tuning rate
  c.finetune.warmup_steps = 30
  c.convert = ml_collections.ConfigDict()  # the convert job (plm/jobs/convert.py)
  c.convert.source = source  # the transformers directory read
  c.export = ml_collections.ConfigDict()  # the export job
  c.export.output = ''  # directory written: config.json, model.safetensors, tokenizer files
  return c
