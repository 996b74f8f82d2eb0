"""Sentence vectors from a trained encoder: one layer (`embed.layer`: -1 = the
last, 0 = the embeddings, k = the output of block k) pooled over the sentence's
tokens (`embed.pooling`: mean, max, or first = the bos position).

Used by the `embed` and `retrieve` jobs and by retrieval during training.
"""
import jax
import jax.numpy as jnp
import numpy as np

from plm import masks

POOLINGS = ('mean', 'max', 'first')


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


def encoder_of(model):
  """The encoder inside a model with a head (EncoderLM, EncoderClassifier), or the model."""
  return getattr(model, 'encoder', model)


def make_embedder(model, config, pad_id: int):
  """A jitted (params, tokens [B, L], lang) -> [B, H] float32 vectors.

  `lang` (a language id) is used only by models with language embeddings; the
  layer and pooling are `embed.layer` and `embed.pooling`.
  """
  ec, with_langs = config.embed, bool(config.model.num_languages)
  check_options(config, encoder_of(model).layers)

  def encode(m, tokens, lang):
    valid = tokens != pad_id
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    langs = jnp.full_like(tokens, lang) if with_langs else None
    states = encoder_of(m)(tokens, positions, masks.padding_mask(valid), langs=langs,
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
