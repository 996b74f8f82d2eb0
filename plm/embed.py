"""The `embed` job: one vector per input line from a trained encoder.

  python -m plm.main --config=configs/xlm.py --config.job=embed \
      --config.embed.input=sentences.txt --config.embed.output=vectors.npy --workdir=runs/xlm

Reads UTF-8 text, one sentence per line, and writes a float32 array
[lines, hidden] in the same order: one encoder layer (`embed.layer`: -1 = the
last, 0 = the embeddings, k = the output of block k) pooled over the sentence's
tokens (`embed.pooling`: mean, max, or first = the bos position).
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


def check_options(config, num_layers: int) -> None:
  """embed.pooling and embed.layer name something the model has."""
  ec = config.embed
  if ec.pooling not in POOLINGS:
    raise ValueError(f'embed.pooling={ec.pooling!r}: use one of {POOLINGS}')
  if not -(num_layers + 1) <= ec.layer <= num_layers:
    raise ValueError(f'embed.layer={ec.layer} but the model has {num_layers} blocks; use 0 '
                     f'(embeddings) to {num_layers}, or -1 (last) to -{num_layers + 1}')


def load_run(config, workdir: str):
  """(tokenizer, model, params) of the newest checkpoint in `workdir`, on one device."""
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
  model = models.build(config.model, tokenizer.vocab_size)
  check_options(config, model.encoder.layers)
  dummy = jnp.zeros((1, 8), jnp.int32).at[:, 0].set(tokenizer.bos_id)
  kw = dict(langs=dummy * 0) if config.model.num_languages else {}
  abstract = jax.eval_shape(lambda: nn.unbox(model.init(
      jax.random.PRNGKey(0), dummy, jnp.zeros_like(dummy), masks.padding_mask(dummy > 0),
      **kw)['params']))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  params, meta = checkpoint.restore_params(
      ckpt_dir, abstract, jax.tree_util.tree_map(lambda _: device, abstract))
  train.check_meta(meta, dict(vocab=tokenizer.fingerprint, model=config.model.to_dict()))
  return tokenizer, model, params


def make_embedder(model, config, pad_id: int):
  """A jitted (params, tokens [B, L], lang) -> [B, H] float32 vectors.

  `lang` (a language id) is used only by models with language embeddings; the
  layer and pooling are `embed.layer` and `embed.pooling`.
  """
  ec, with_langs = config.embed, bool(config.model.num_languages)
  check_options(config, model.encoder.layers)

  def encode(m, tokens, lang):
    valid = tokens != pad_id
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    langs = jnp.full_like(tokens, lang) if with_langs else None
    states = m.encoder(tokens, positions, masks.padding_mask(valid), langs=langs,
                       all_layers=True)
    return pool(states[ec.layer], valid, ec.pooling).astype(jnp.float32)

  return jax.jit(lambda params, tokens, lang: model.apply(
      {'params': params}, tokens, lang, method=encode))


def embed_rows(embedder, params, rows, pad_id: int, batch_size: int, lang: int = 0
               ) -> np.ndarray:
  """Vectors [len(rows) > 0, H] of token rows, batched at one padded shape (one compile)."""
  out = []
  width = max(len(r) for r in rows)
  for start in range(0, len(rows), batch_size):
    chunk = rows[start:start + batch_size]
    tokens = np.full((batch_size, width), pad_id, np.int32)
    for i, row in enumerate(chunk):
      tokens[i, :len(row)] = row
    out.append(np.asarray(embedder(params, tokens, lang))[:len(chunk)])
  return np.concatenate(out)


def embed_file(config, workdir: str) -> np.ndarray:
  """Runs the job; returns (and writes to embed.output) the vectors."""
  ec = config.embed
  languages = tuple(config.data.languages)
  if config.model.num_languages and ec.language not in languages:
    raise ValueError(f'embed.language={ec.language!r} is not in data.languages {languages}; '
                     'name the language of the input file')
  tokenizer, model, params = load_run(config, workdir)
  lines = read_lines(ec.input)
  rows = encode_lines(tokenizer, lines, config.model.max_len, ec.input)
  lang = languages.index(ec.language) if ec.language in languages else 0
  vectors = (embed_rows(make_embedder(model, config, tokenizer.pad_id), params, rows,
                        tokenizer.pad_id, ec.batch_size, lang)
             if rows else np.zeros((0, model.encoder.hidden), np.float32))
  os.makedirs(os.path.dirname(os.path.abspath(ec.output)), exist_ok=True)
  np.save(ec.output, vectors)
  print(f'embedded {len(lines)} lines of {ec.input} into {ec.output} '
        f'({vectors.shape[1]} dims, {ec.pooling} pooling of layer {ec.layer})', flush=True)
  return vectors
