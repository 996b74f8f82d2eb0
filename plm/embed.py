"""The `embed` job: one vector per input line from a trained encoder.

  python -m plm.main --config=configs/xlm.py --config.job=embed \
      --config.embed.input=sentences.txt --config.embed.output=vectors.npy --workdir=runs/xlm

Reads UTF-8 text, one sentence per line, and writes a float32 array
[lines, hidden] in the same order: the encoder's last layer pooled over the
sentence's tokens (`embed.pooling`: mean, max, or first = the bos position).
"""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from plm import checkpoint, masks, models, train
from plm.data import tokenizer as tokenizer_lib

POOLINGS = ('mean', 'max', 'first')


def read_lines(path: str) -> list[str]:
  if not os.path.isfile(path):
    raise FileNotFoundError(f'embed.input={path!r} does not exist; give a UTF-8 text file '
                            'with one sentence per line')
  lines = []
  with open(path, 'rb') as f:
    for number, raw in enumerate(f, start=1):
      try:
        lines.append(raw.decode('utf-8').rstrip('\r\n'))
      except UnicodeDecodeError as e:
        raise ValueError(f'{path}, line {number}: not UTF-8 ({e.reason}); re-encode the file '
                         'as UTF-8') from None
  return lines


def encode_lines(tokenizer, lines, max_len: int, path: str) -> list[list[int]]:
  """`[bos] pieces [eos]` per line; a line longer than the model is an error, not cut."""
  rows = []
  for number, ids in enumerate(tokenizer.encode(lines), start=1):
    row = [tokenizer.bos_id] + ids + [tokenizer.eos_id]
    if len(row) > max_len:
      raise ValueError(f'{path}, line {number}: {len(row)} tokens with bos/eos, more than '
                       f'model.max_len={max_len}; split the line or use a longer model')
    rows.append(row)
  return rows


def pool(hidden, valid, how: str):
  """[B, L, H] -> [B, H] over the valid tokens."""
  w = valid[..., None].astype(hidden.dtype)
  if how == 'mean':
    return (hidden * w).sum(1) / jnp.maximum(w.sum(1), 1.0)
  if how == 'max':
    return jnp.where(w > 0, hidden, -jnp.inf).max(1)
  return hidden[:, 0]


def embed_file(config, workdir: str) -> np.ndarray:
  """Runs the job; returns (and writes to embed.output) the vectors."""
  ec = config.embed
  if ec.pooling not in POOLINGS:
    raise ValueError(f'embed.pooling={ec.pooling!r}: use one of {POOLINGS}')
  workdir = os.path.abspath(os.path.expanduser(workdir))
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt_dir) or not any(d.isdigit() for d in os.listdir(ckpt_dir)):
    raise FileNotFoundError(f'no checkpoint in {ckpt_dir}; train first (config.job=train) or '
                            'point --workdir at a trained run')
  vocab = train.vocab_path(config, workdir)
  if not os.path.isfile(vocab):
    raise FileNotFoundError(f'no vocabulary at {vocab}; point --workdir at a trained run or set '
                            'data.vocab_path')
  tokenizer = tokenizer_lib.Tokenizer.load(vocab)
  languages = tuple(config.data.languages)
  if config.model.num_languages and ec.language not in languages:
    raise ValueError(f'embed.language={ec.language!r} is not in data.languages {languages}; '
                     'name the language of the input file')
  model = models.build(config.model, tokenizer.vocab_size)
  lines = read_lines(ec.input)
  rows = encode_lines(tokenizer, lines, config.model.max_len, ec.input)

  def inputs(tokens):
    valid = tokens != tokenizer.pad_id
    kw = dict(tokens=tokens, positions=jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape),
              mask=masks.padding_mask(valid))
    if config.model.num_languages:
      kw['langs'] = jnp.full_like(tokens, languages.index(ec.language))
    return kw, valid

  dummy = jnp.zeros((1, 8), jnp.int32).at[:, 0].set(tokenizer.bos_id)
  abstract = jax.eval_shape(
      lambda: nn.unbox(model.init(jax.random.PRNGKey(0), **inputs(dummy)[0])['params']))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  params, meta = checkpoint.restore_params(
      ckpt_dir, abstract, jax.tree_util.tree_map(lambda _: device, abstract))
  train.check_meta(meta, dict(vocab=tokenizer.fingerprint, model=config.model.to_dict()))

  @jax.jit
  def embed_batch(params, tokens):
    kw, valid = inputs(tokens)
    hidden = model.apply({'params': params}, **kw,
                         method=lambda m, **a: m.encoder(a.pop('tokens'), a.pop('positions'),
                                                         a.pop('mask'), **a))
    return pool(hidden, valid, ec.pooling)

  out = []
  width = max([len(r) for r in rows], default=1)
  for start in range(0, len(rows), ec.batch_size):
    chunk = rows[start:start + ec.batch_size]
    tokens = np.full((ec.batch_size, width), tokenizer.pad_id, np.int32)  # one shape: one compile
    for i, row in enumerate(chunk):
      tokens[i, :len(row)] = row
    out.append(np.asarray(embed_batch(params, tokens))[:len(chunk)])
  vectors = (np.concatenate(out) if out else
             np.zeros((0, model.encoder.hidden), np.float32)).astype(np.float32)
  os.makedirs(os.path.dirname(os.path.abspath(ec.output)), exist_ok=True)
  np.save(ec.output, vectors)
  print(f'embedded {len(lines)} lines of {ec.input} into {ec.output} '
        f'({vectors.shape[1]} dims, {ec.pooling} pooling)', flush=True)
  return vectors
