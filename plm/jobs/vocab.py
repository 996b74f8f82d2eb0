r"""The `vocab` job: build the joint sentencepiece BPE once and print its fingerprint.

  python -m plm.main --config=configs/xlm.py --config.job=vocab --workdir=runs/xlm

Writes data.vocab_path (or {workdir}/vocab/spm.model), trained on the training
split with XLM's per-language sampling (data.vocab_alpha). Record the printed
fingerprint in the config (data.vocab_fingerprint) and every later run refuses
any other vocabulary file. An existing file is kept (delete it to retrain).
"""
import os

from plm import workdir as workdir_lib


def build_vocab(config, workdir: str) -> str:
  """Trains (or loads) the vocabulary; returns its fingerprint."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  path = workdir_lib.vocab_path(config, workdir)
  existed = os.path.exists(path)
  tokenizer = workdir_lib.load_tokenizer(config, workdir)
  what = 'kept the existing' if existed else 'trained'
  print(f'vocab: {what} {path} ({tokenizer.vocab_size} pieces, vocab_alpha='
        f'{config.data.vocab_alpha}); fingerprint {tokenizer.fingerprint}\n'
        f'record it in the config: --config.data.vocab_fingerprint={tokenizer.fingerprint}',
        flush=True)
  return tokenizer.fingerprint
