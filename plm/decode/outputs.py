"""Source token ids to output text with a trained model: UNILM generation and
encoder-decoder translation, in batches of one shape.

The jobs (generate, mt, translate) and a loaded run (`plm.load(workdir).generate` /
`.translate`) call these, so the job's outputs and the run's are one computation.
"""
from typing import Callable

import numpy as np

from plm.data import labelled
from plm.decode import seq2seq, unilm
from plm.errors import UserError


def in_batches(fn: Callable[[list], list], items: list, batch_size: int) -> list:
  """fn over `items` batch_size at a time, outputs in order; the last batch is filled
  with copies of its last item, so every call has one shape (one compile)."""
  out = []
  for start in range(0, len(items), batch_size):
    chunk = items[start:start + batch_size]
    out += fn(chunk + [chunk[-1]] * (batch_size - len(chunk)))[:len(chunk)]
  return out


def generate_ids(config, model, tokenizer, params, sources: list[list[int]]) -> list[str]:
  """UNILM beam search of each source's ids (without bos/eos) into text, in order."""
  fc, dc, tok = config.finetune, config.decode, tokenizer
  if not sources:
    return []
  width = max(len(src) for src in sources) + 2
  decoder = unilm.make_decoder(
      model, mask_id=tok.mask_id, eos_id=tok.eos_id, pad_id=tok.pad_id,
      batch_size=dc.batch_size, prompt_width=width,
      max_len=min(fc.seq_len, width + dc.max_target_len), beam_size=dc.beam_size,
      length_penalty=dc.length_penalty, no_repeat_ngram=dc.no_repeat_ngram, cached=dc.cache,
      restart_positions=labelled.target_positions_restart(fc))

  def batch(chunk):
    prompt, valid = unilm.left_pad(chunk, width, bos_id=tok.bos_id, eos_id=tok.eos_id,
                                   pad_id=tok.pad_id)
    return [tok.decode(unilm.strip(row, tok.eos_id))
            for row in np.asarray(decoder(params, prompt, valid))]

  return in_batches(batch, sources, dc.batch_size)


def generate_limit(config) -> tuple[int, str]:
  """The most tokens a UNILM source may have with bos/eos, and the fix for more: a row
  holds [bos] source [eos] and the output, at most seq_len - width tokens of it."""
  seq_len = config.finetune.seq_len
  return seq_len - 1, (f'which leave no room for an output in finetune.seq_len={seq_len}; '
                       'split the line or fine-tune with a longer finetune.seq_len')


def translate_limit(config) -> tuple[int, str]:
  """The most tokens a translation source may have with bos/eos, and the fix for more."""
  mt_languages(config)  # both named and distinct, before anything is decoded
  src_len = config.mt.src_len
  return src_len, (f'more than mt.src_len={src_len}; split the line or raise mt.src_len (at '
                   f'most model.max_len={config.model.max_len})')


def mt_languages(config) -> tuple[int, int]:
  """The language ids of mt.source and mt.target, both in data.languages and distinct."""
  langs, mc = tuple(config.data.languages), config.mt
  for field, lang in (('mt.source', mc.source), ('mt.target', mc.target)):
    if lang not in langs:
      raise UserError(f'{field}={lang!r} is not in data.languages={list(langs)}; use one of '
                      'them (the model has one language embedding each)')
  if mc.source == mc.target:
    raise UserError(f'mt.source and mt.target are both {mc.source!r}; pick two languages')
  return langs.index(mc.source), langs.index(mc.target)


def translate_ids(config, model, tokenizer, params, sources: list[list[int]]) -> list[str]:
  """Encoder-decoder beam search over `sources` (token ids) mt.source -> mt.target."""
  mc, dc, tok = config.mt, config.decode, tokenizer
  src_lang, tgt_lang = mt_languages(config)
  with_langs = bool(config.model.num_languages)
  translator = seq2seq.make_translator(
      model, batch_size=dc.batch_size, src_len=mc.src_len, max_len=dc.max_target_len,
      bos_id=tok.bos_id, eos_id=tok.eos_id, pad_id=tok.pad_id, beam_size=dc.beam_size,
      length_penalty=dc.length_penalty, no_repeat_ngram=dc.no_repeat_ngram, cached=dc.cache)
  langs = np.full((dc.batch_size,), src_lang, np.int32) if with_langs else None

  def batch(chunk):
    tokens = np.full((dc.batch_size, mc.src_len), tok.pad_id, np.int32)
    for r, ids in enumerate(chunk):
      tokens[r, :len(ids) + 2] = [tok.bos_id, *ids, tok.eos_id]
    best = np.asarray(translator(params, tokens, langs, tgt_lang if with_langs else None))
    return [tok.decode(row[:row.index(tok.eos_id)] if tok.eos_id in row else row)
            for row in map(list, best)]

  return in_batches(batch, sources, dc.batch_size)
