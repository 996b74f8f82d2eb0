"""Sentence vectors from any trained model, through its `sentence_vectors` method:
the Transformer families pool one layer (`embed.layer`: -1 = the last, 0 = the
embeddings, k = the output of block k) over the sentence's tokens (`embed.pooling`:
mean, max, or first = the bos position); LASER max-pools its BiLSTM.

Used by the `embed`, `retrieve` and `mine` jobs and by retrieval during training.
Rows are embedded sorted by length, in batches padded to a multiple of
`LENGTH_BUCKET` tokens (a few compiled shapes, little padding), and returned in
input order.
"""
import jax
import numpy as np

from plm.errors import UserError
from plm.nn.pooling import POOLINGS

LENGTH_BUCKET = 16  # batch widths are multiples of this: few compiles, little padding


def encode_lines(tokenizer, lines, max_len: int | None, path: str) -> list[list[int]]:
  """`[bos] pieces [eos]` per line; a line longer than `max_len` (None: no limit, LASER)
  is an error, not cut. An empty line gives `[bos, eos]`: an empty sentence."""
  rows = []
  for number, ids in enumerate(tokenizer.encode(lines), start=1):
    row = [tokenizer.bos_id] + ids + [tokenizer.eos_id]
    if max_len and len(row) > max_len:
      raise UserError(f'{path}, line {number}: {len(row)} tokens with bos/eos, more than '
                      f'model.max_len={max_len}; split the line or use a longer model')
    rows.append(row)
  return rows


def num_layers(model) -> int:
  """Blocks (or BiLSTM layers) of the model's sentence encoder."""
  return model.layers if hasattr(model, 'layers') else model.encoder.layers


def check_options(config, layers: int) -> None:
  """embed.pooling and embed.layer name something the model has."""
  ec = config.embed
  if ec.pooling not in POOLINGS:
    raise UserError(f'embed.pooling={ec.pooling!r}: use one of {POOLINGS}')
  if not -(layers + 1) <= ec.layer <= layers:
    raise UserError(f'embed.layer={ec.layer} but the model has {layers} blocks; use 0 '
                    f'(embeddings) to {layers}, or -1 (last) to -{layers + 1}')


def encoder_of(model):
  """The encoder inside a model with a head (EncoderLM, EncoderClassifier), or the model."""
  return getattr(model, 'encoder', model)


def make_embedder(model, config, pad_id: int):
  """A jitted (params, tokens [B, L], lang) -> [B, H] float32 vectors: the model's
  `sentence_vectors` with `embed.layer` and `embed.pooling`.

  `lang` (a language id) is used only by models with language embeddings.
  """
  ec, with_langs = config.embed, bool(config.model.get('num_languages', 0))
  check_options(config, num_layers(model))

  def vectors(params, tokens, lang):
    langs = np.full(tokens.shape, 0, np.int32) + lang if with_langs else None
    return model.apply({'params': params}, tokens, langs, layer=ec.layer, pooling=ec.pooling,
                       pad_id=pad_id, method='sentence_vectors')

  return jax.jit(vectors)


def vector_size(embedder, params) -> int:
  """The width of the embedder's vectors (traced, nothing computed)."""
  return jax.eval_shape(embedder, params, np.zeros((1, LENGTH_BUCKET), np.int32), 0).shape[-1]


def embed_lines(config, tokenizer, model, params, lines: list[str], language: str,
                where: str) -> np.ndarray:
  """Vectors [len(lines), H] of text lines in `language` (one of data.languages; any name
  for a model without language embeddings): what job=embed writes. `where` names the
  lines in errors (the input file)."""
  languages = tuple(config.data.languages)
  if config.model.get('num_languages', 0) and language not in languages:
    raise UserError(f'language {language!r} is not in data.languages {languages}; name the '
                    'language of the input (embed.language for job=embed)')
  embedder = make_embedder(model, config, tokenizer.pad_id)
  rows = encode_lines(tokenizer, lines, config.model.get('max_len'), where)
  lang = languages.index(language) if language in languages else 0
  return embed_rows(embedder, params, rows, tokenizer.pad_id, config.embed.batch_size, lang)


def embed_rows(embedder, params, rows, pad_id: int, batch_size: int, lang: int = 0
               ) -> np.ndarray:
  """Vectors [len(rows), H] of token rows, in input order.

  Rows go longest first, batch_size at a time, each batch padded to its longest
  row rounded up to LENGTH_BUCKET; the last batch is padded with empty rows, so
  every batch has one of a few shapes.
  """
  if not rows:
    return np.zeros((0, vector_size(embedder, params)), np.float32)
  order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
  out = np.zeros((len(rows), 0), np.float32)
  for start in range(0, len(rows), batch_size):
    chunk = order[start:start + batch_size]
    width = -(-max(len(rows[chunk[0]]), 1) // LENGTH_BUCKET) * LENGTH_BUCKET
    tokens = np.full((batch_size, width), pad_id, np.int32)
    for i, r in enumerate(chunk):
      tokens[i, :len(rows[r])] = rows[r]
    got = np.asarray(embedder(params, tokens, lang))[:len(chunk)]
    if not out.shape[1]:
      out = np.zeros((len(rows), got.shape[1]), np.float32)
    out[chunk] = got
  return out
