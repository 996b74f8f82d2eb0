r"""The `convert` and `export` jobs: transformers checkpoints into plm runs and back.

  python -m plm.main --config=configs/hf.py:/path/to/hf_model --workdir=runs/minilm
  python -m plm.main --config=configs/hf.py:/path/to/hf_model --config.job=export \
      --config.export.output=/tmp/minilm_hf --workdir=runs/minilm

`convert` reads convert.source (plm/convert/hf.py) and writes a plm run directory:
the parameters as an orbax checkpoint (step 0), the tokenizer file under vocab/ and
config.json, so `plm.load(workdir)` and every job read it, and fine-tuning jobs
start from it with --config.init_from={workdir}/checkpoints. `export` writes the
newest parameters of a plm encoder run as config.json + model.safetensors + the
tokenizer, which transformers' from_pretrained reads.
"""
import json
import os
import shutil

import flax.linen as nn
import jax
import numpy as np

from plm import checkpoint, models, run
from plm import workdir as workdir_lib
from plm.convert import hf
from plm.data import tokenizer as tokenizer_lib
from plm.errors import UserError


def convert_job(config, workdir: str) -> str:
  """Writes the plm run of config.convert.source into `workdir`; returns the checkpoint dir."""
  workdir = workdir_lib.workdir_path(workdir)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise UserError(f'{ckpt_dir} already holds a checkpoint; convert into a new --workdir')
  source = config.convert.source
  cfg, tensors = hf.read_checkpoint(source)
  config = run.resolve(config)
  vocab_dir = os.path.join(workdir, 'vocab')
  os.makedirs(vocab_dir, exist_ok=True)
  vocab = os.path.join(vocab_dir, os.path.basename(config.data.vocab_path))
  shutil.copyfile(config.data.vocab_path, vocab)
  if vocab.endswith('.txt') and os.path.isfile(os.path.join(source, 'tokenizer_config.json')):
    shutil.copyfile(os.path.join(source, 'tokenizer_config.json'),
                    os.path.join(vocab_dir, 'tokenizer_config.json'))  # its do_lower_case
  tokenizer = tokenizer_lib.load(vocab)
  tokenizer_lib.check_vocab_size(tokenizer, cfg['vocab_size'], source)
  params = hf.to_plm(tensors, cfg, with_mlm_head=config.model.name == 'encoder_lm')
  # The params must be exactly the tree the configured model initializes.
  model = models.build(config.model, tokenizer.vocab_size)
  tokens = np.full((1, 8), tokenizer.pad_id, np.int32)
  want = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), tokens,
                                           np.zeros_like(tokens), None))
  shapes = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)
  if shapes(nn.unbox(want)['params']) != shapes(params):
    raise UserError(f'the converted parameters of {source} do not fit model '
                    f'{config.model.to_dict()}; the config and the checkpoint disagree')
  config.data.vocab_path = vocab
  meta = dict(vocab=tokenizer.fingerprint, vocab_size=tokenizer.vocab_size,
              model=config.model.to_dict(), task='convert', source=source)
  mngr = checkpoint.manager(workdir, max_to_keep=1)
  checkpoint.save(mngr, 0, dict(params=jax.tree.map(np.asarray, params)), meta)
  checkpoint.wait(mngr, 0)
  mngr.close()
  workdir_lib.write_config(config, workdir)
  n = sum(x.size for x in jax.tree.leaves(params))
  print(f'convert: {source} -> {ckpt_dir} ({config.model.name}, {n / 1e6:.1f}M parameters, '
        f'vocabulary {vocab} with {tokenizer.vocab_size} tokens, fingerprint '
        f'{tokenizer.fingerprint})\nfine-tune from it: --config.init_from={ckpt_dir}',
        flush=True)
  return ckpt_dir


def export_job(config, workdir: str) -> str:
  """Writes the newest params of the run in `workdir` to config.export.output."""
  out = config.export.output
  if not out:
    raise UserError('config.export.output is empty: name the directory to write the '
                    'transformers checkpoint into')
  loaded = workdir_lib.load(workdir)
  mc = loaded.config.model
  if mc.name not in ('encoder', 'encoder_lm'):
    raise UserError(f'export writes BERT-layout encoders; the run in {workdir} holds a '
                    f'{mc.name!r} model')
  encoder = loaded.model.encoder if mc.name == 'encoder_lm' else loaded.model
  kw = {k: getattr(encoder, k) for k in ('vocab_size', 'layers', 'hidden', 'heads', 'ff',
                                         'activation', 'dropout', 'attention_dropout', 'max_len',
                                         'num_segments', 'num_languages', 'num_tasks',
                                         'positions', 'post_ln', 'ln_eps')}
  tok = loaded.tokenizer
  special = dict(pad_token_id=tok.pad_id, bos_token_id=tok.bos_id, eos_token_id=tok.eos_id)
  hf.write_checkpoint(out, jax.device_get(loaded.params), kw, special)
  if isinstance(tok, tokenizer_lib.HFTokenizer):
    tok.save(out)
    with open(os.path.join(out, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
      json.dump(dict(tokenizer_class='PreTrainedTokenizerFast', model_max_length=kw['max_len'],
                     cls_token='[CLS]', sep_token='[SEP]', pad_token='[PAD]', unk_token='[UNK]',
                     mask_token='[MASK]'), f, indent=1)
  else:  # sentencepiece: the model file, for users to load with sentencepiece
    shutil.copyfile(tok.path, os.path.join(out, 'spm.model'))
  print(f'export: step {loaded.step} of {workdir} -> {out} (config.json, model.safetensors, '
        'tokenizer)', flush=True)
  return out
