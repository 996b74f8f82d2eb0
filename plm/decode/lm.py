"""Step functions of a left-to-right EncoderLM (CLM) for plm/decode/search.py.

State: {'kv' or 'tokens'/'positions'/'index': ..., 'key_valid': None or bool
[B, max_len] (False = a left-pad slot, never attended), 'langs': None or [B]}.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from plm import masks

Array = jax.Array


def lm_step_fn(model: nn.Module, params, *, batch_size: int, max_len: int, langs=None):
  """(step_fn, cache) for a causal EncoderLM with a KV cache of `max_len` slots.

  The cache comes from `model.init(..., decode=True)` on a [B, max_len] dummy
  (under eval_shape: only its shapes, all zeros). Each step feeds one token with
  mask None: attention.py limits it to the filled prefix, which is causal.
  `max_len` must cover the prefilled prompt plus every step: a write past the
  last slot is clamped by dynamic_update_slice and silently overwrites it.
  """
  dummy = jnp.zeros((batch_size, max_len), jnp.int32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), dummy, dummy, None,
                                             decode=True))
  kv = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])

  def step(cache, tokens, position):
    pos = jnp.broadcast_to(position, tokens.shape)[:, None]
    key_valid = cache['key_valid']
    mask = None if key_valid is None else key_valid[:, None, None, :]
    logits, mutated = model.apply(
        {'params': params, 'cache': cache['kv']}, tokens[:, None], pos, mask,
        langs=_langs(cache, 1), decode=True, mutable=['cache'])
    return logits[:, -1], {**cache, 'kv': mutated['cache']}

  return step, dict(kv=kv, key_valid=None, langs=langs)


def uncached_step_fn(model: nn.Module, params, *, batch_size: int, max_len: int, langs=None):
  """(step_fn, state) like lm_step_fn's, recomputing all `max_len` slots each step.

  Static shapes under jit: each step runs the model over the whole [B, max_len]
  buffer with a causal mask that also hides the slots not yet written.
  """
  def step(state, tokens, position):
    i = state['index']
    buf = state['tokens'].at[:, i].set(tokens)
    pos = state['positions'].at[:, i].set(jnp.broadcast_to(position, tokens.shape))
    valid = jnp.broadcast_to(jnp.arange(max_len) <= i, buf.shape)
    if state['key_valid'] is not None:
      valid &= state['key_valid']
    logits = model.apply({'params': params}, buf, pos, masks.causal_mask(valid),
                         predict_positions=jnp.full((buf.shape[0], 1), i),
                         langs=_langs(state, max_len))
    return logits[:, 0], {**state, 'tokens': buf, 'positions': pos, 'index': i + 1}

  zeros = jnp.zeros((batch_size, max_len), jnp.int32)
  return step, dict(tokens=zeros, positions=zeros, index=jnp.int32(0), key_valid=None,
                    langs=langs)


def _langs(state, length: int):
  langs = state['langs']
  return None if langs is None else jnp.broadcast_to(langs[:, None], (langs.shape[0], length))


def lm_prefill(model: nn.Module, params, cache, prompt: Array, valid=None):
  """Feeds prompt[:, :-1] into a fresh state; returns (state, prompt[:, -1], its position).

  Works on lm_step_fn's cache (one decode=True call) and on uncached_step_fn's
  buffer alike.

  Prompts are left-padded (`valid` [B, P], False before the first real token) so
  every row's next token lands in the same cache slot; positions count real
  tokens only, and pad slots stay masked for the rest of decoding. Start the
  search from the returned token and position:

    cache, first, pos = lm_prefill(model, params, cache, prompt, valid)
    tokens = search.greedy(step_fn, cache, first, start_position=pos, ...)

  The cached prefill passes a causal [B, 1, P - 1, max_len] mask, since
  attention.py's cache alone lets a multi-token chunk see all of itself.
  """
  batch, length = prompt.shape
  valid = jnp.ones(prompt.shape, bool) if valid is None else jnp.asarray(valid, bool)
  positions = jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0).astype(jnp.int32)
  # Every per-slot leaf (cached keys/values or the token buffer) is [B, max_len, ...].
  slots = max(x.shape[1] for x in jax.tree.leaves(cache) if jnp.ndim(x) >= 2)
  key_valid = jnp.concatenate([valid, jnp.ones((batch, slots - length), bool)], 1)
  cache = {**cache, 'key_valid': key_valid}
  head, first, pos = prompt[:, :-1], prompt[:, -1], positions[:, -1]
  if length == 1:
    return cache, first, pos
  if 'kv' not in cache:
    n = length - 1
    return ({**cache, 'tokens': cache['tokens'].at[:, :n].set(head),
             'positions': cache['positions'].at[:, :n].set(positions[:, :-1]),
             'index': jnp.int32(n)}, first, pos)
  causal = jnp.arange(slots)[None, :] <= jnp.arange(length - 1)[:, None]
  mask = causal[None, None] & key_valid[:, None, None, :]
  _, mutated = model.apply(
      {'params': params, 'cache': cache['kv']}, head, positions[:, :-1], mask,
      predict_positions=jnp.zeros((batch, 1), jnp.int32), langs=_langs(cache, length - 1),
      decode=True, mutable=['cache'])
  return {**cache, 'kv': mutated['cache']}, first, pos
