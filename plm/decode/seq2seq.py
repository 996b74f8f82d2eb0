"""Translation with a Seq2Seq model: greedy or beam search over plm/decode/search.py.

The source is encoded once (`prefill`). Step i of the searches feeds the
previous target token (bos at i = 0) at position i, with the target language
id, and picks output token i. Two step functions with the same contract:

  cached_step_fn    the decoder's self-attention keys/values are cached, and
                    its cross-attention keys/values of the encoder output are
                    computed once by `prefill` and only read at each step.
  uncached_step_fn  recomputes the decoder over all `max_len` slots each step
                    (the reference the cached one is tested and timed against).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from plm import masks
from plm.decode import search
from plm.errors import UserError


def _dummy_cache(model: nn.Module, batch_size: int, src_len: int, max_len: int):
  """The decoder's 'cache' collection, all zeros: `max_len` self-attention slots and
  `src_len` cross-attention keys per layer (shapes from an init under eval_shape)."""
  enc = model.encoder
  encoded = jnp.zeros((batch_size, src_len, enc.hidden), jnp.float32)  # whatever model.dtype
  tgt = jnp.zeros((batch_size, max_len), jnp.int32)
  langs = tgt if enc.num_languages else None
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), encoded, tgt, tgt, None,
                                             None, langs, decode=True, method='decode'))
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])


def _logits(model, params, hidden):
  return model.apply({'params': params}, hidden, method='logits')


def _tgt_langs(state, length: int):
  langs = state['tgt_langs']
  return None if langs is None else jnp.broadcast_to(langs[:, None], (langs.shape[0], length))


def cached_step_fn(model: nn.Module, params, *, batch_size: int, src_len: int, max_len: int):
  """(step_fn, state) with a KV cache of `max_len` target slots; call `prefill` first."""
  def step(state, tokens, position):
    pos = jnp.broadcast_to(position, tokens.shape)[:, None]
    # Self-attention: mask None, attention.py limits it to the filled (causal) prefix.
    hidden, mutated = model.apply(
        {'params': params, 'cache': state['kv']}, None, tokens[:, None], pos, None,
        state['src_valid'][:, None, None, :], _tgt_langs(state, 1), decode=True,
        method='decode', mutable=['cache'])
    return _logits(model, params, hidden)[:, 0], {**state, 'kv': mutated['cache']}

  return step, dict(kv=_dummy_cache(model, batch_size, src_len, max_len))


def uncached_step_fn(model: nn.Module, params, *, batch_size: int, src_len: int, max_len: int):
  """(step_fn, state) recomputing the decoder over all `max_len` slots each step."""
  del src_len  # the encoder output comes with `prefill`

  def step(state, tokens, position):
    i = state['index']
    buf = state['tokens'].at[:, i].set(tokens)
    pos = state['positions'].at[:, i].set(jnp.broadcast_to(position, tokens.shape))
    valid = jnp.broadcast_to(jnp.arange(max_len) <= i, buf.shape)
    hidden = model.apply({'params': params}, state['encoded'], buf, pos, masks.causal_mask(valid),
                         masks.cross_attention_mask(valid, state['src_valid']),
                         _tgt_langs(state, max_len), method='decode')
    hidden = jax.lax.dynamic_slice_in_dim(hidden, i, 1, axis=1)
    return (_logits(model, params, hidden)[:, 0],
            {**state, 'tokens': buf, 'positions': pos, 'index': i + 1})

  zeros = jnp.zeros((batch_size, max_len), jnp.int32)
  return step, dict(tokens=zeros, positions=zeros, index=jnp.int32(0))


def prefill(model: nn.Module, params, state, src_tokens, src_langs=None, tgt_langs=None, *,
            pad_id: int):
  """Encodes the sources once; returns the state the search starts from.

  src_tokens [B, Ls] (pad_id = padding), src_langs and tgt_langs [B] or None.
  The cached state gets every layer's cross-attention keys/values from one
  decode call on an empty target prefix.
  """
  valid = src_tokens != pad_id
  positions = jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0).astype(jnp.int32)
  langs = None if src_langs is None else jnp.broadcast_to(
      jnp.asarray(src_langs, jnp.int32)[:, None], src_tokens.shape)
  encoded = model.apply({'params': params}, src_tokens, positions, masks.padding_mask(valid),
                        langs, method='encode')
  state = {**state, 'src_valid': valid, 'tgt_langs': tgt_langs}
  if 'kv' not in state:
    return {**state, 'encoded': encoded}
  empty = jnp.zeros((src_tokens.shape[0], 0), jnp.int32)
  _, mutated = model.apply({'params': params, 'cache': state['kv']}, encoded, empty, empty, None,
                           None, _tgt_langs(state, 0), decode=True, method='decode',
                           mutable=['cache'])
  return {**state, 'kv': mutated['cache']}


def make_translator(model: nn.Module, *, batch_size: int, src_len: int, max_len: int, bos_id: int,
                    eos_id: int, pad_id: int, beam_size: int, length_penalty: float,
                    no_repeat_ngram: int, cached: bool = True):
  """Jitted (params, src_tokens [B, Ls], src_langs [B] or None, tgt_lang int or [B] or None)
  -> best tokens int32 [B, max_len] (eos, then pad_id).

  beam_size 1 is greedy search. The languages are None for a model without
  language embeddings. The model's position table bounds `max_len`.
  """
  if max_len > model.decoder.max_len:
    raise UserError(f'max_len={max_len} target tokens exceed model.max_len='
                    f'{model.decoder.max_len}')
  make_step = cached_step_fn if cached else uncached_step_fn

  @jax.jit
  def run(params, src_tokens, src_langs, tgt_lang):
    if src_tokens.shape != (batch_size, src_len):
      raise UserError(f'src_tokens has shape {src_tokens.shape}, not (batch_size, src_len) = '
                      f'{(batch_size, src_len)}')
    step, state = make_step(model, params, batch_size=batch_size, src_len=src_len,
                            max_len=max_len)
    tgt_langs = None if tgt_lang is None else jnp.broadcast_to(
        jnp.asarray(tgt_lang, jnp.int32), (batch_size,))
    state = prefill(model, params, state, src_tokens, src_langs, tgt_langs, pad_id=pad_id)
    first = jnp.full((batch_size,), bos_id, jnp.int32)
    if beam_size == 1:
      return search.greedy(step, state, first, max_len=max_len, eos_id=eos_id, pad_id=pad_id,
                           no_repeat_ngram=no_repeat_ngram)
    seqs, _ = search.beam_search(step, state, first, beam_size=beam_size, max_len=max_len,
                                 eos_id=eos_id, length_penalty=length_penalty,
                                 no_repeat_ngram=no_repeat_ngram, pad_id=pad_id)
    return seqs[:, 0]

  return run
