"""UNILM seq2seq decoding: the next token is predicted by a [MASK] after the prefix.

A row is `[pad...] [bos] source [eos] | y1 y2 ... [MASK]`: the source is
left-padded into P slots (so every row's target starts at slot P), positions
count real tokens only (they match the training layout of pack_pair), the
source is bidirectional and the target causal (masks.seq2seq_mask). Step i
of plm/decode/search.py's searches feeds the previous token at slot P - 1 + i (the
source's eos at i = 0, always at its own position) and a [MASK] at slot P + i
whose output gives token i. With `restart_positions` (finetune.target_positions
= 'restart') the target's positions count from 1 again, as pack_pair lays them
out: the search then starts from position 0, so the [MASK] of step i sits at
position i + 1.

Two step functions with the same contract:
  cached_step_fn    KV cache: the source is encoded once (bidirectionally); each
                    step feeds [previous token, MASK] and then rewinds the cache
                    index by one, so the next step overwrites the MASK's slot.
  uncached_step_fn  recomputes the whole [N, max_len] buffer each step (the
                    reference the cached one is tested against).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from plm import masks
from plm.decode import search
from plm.errors import UserError


def left_pad(sources, width: int, *, bos_id: int, eos_id: int, pad_id: int):
  """int32 prompts [N, width] `[pad...] [bos] source [eos]` and their valid [N, width]."""
  prompt = np.full((len(sources), width), pad_id, np.int32)
  valid = np.zeros((len(sources), width), bool)
  for i, ids in enumerate(sources):
    row = [bos_id] + list(ids) + [eos_id]
    if len(row) > width:
      raise UserError(f'source {i} has {len(row)} tokens with bos/eos, more than the prompt '
                      f'width {width}')
    prompt[i, width - len(row):] = row
    valid[i, width - len(row):] = True
  return prompt, valid


def _positions(valid):
  return jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0).astype(jnp.int32)


def _fed_position(state, slot, position):
  """The fed token's position: the source eos (step 0) keeps its own."""
  return jnp.where(slot < state['start'], state['eos_position'], position)


def _rewind(kv):
  """Moves every layer's cache index back one slot (onto the MASK just written)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: x - 1 if jax.tree_util.keystr(path).endswith("['cache_index']") else x, kv)


def cached_step_fn(model: nn.Module, params, *, mask_id: int, batch_size: int, max_len: int):
  """(step_fn, state) with a KV cache of `max_len` slots; call `prefill` first."""
  dummy = jnp.zeros((batch_size, max_len), jnp.int32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), dummy, dummy, None,
                                             token_types=dummy, decode=True))
  kv = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])

  def step(state, tokens, position):
    c, n = state['index'], tokens.shape[0]
    position = jnp.broadcast_to(position, (n,))
    feed = jnp.stack([tokens, jnp.full((n,), mask_id, jnp.int32)], 1)
    pos = jnp.stack([_fed_position(state, c, position), position + 1], 1)
    # The eos fed at step 0 is the source's (type 0); later tokens are target (type 1).
    types = jnp.stack([jnp.broadcast_to((c >= state['start']).astype(jnp.int32), (n,)),
                       jnp.ones((n,), jnp.int32)], 1)
    slots = jnp.arange(max_len)
    sees = slots[None, :] <= jnp.stack([c, c + 1])[:, None]  # [2, max_len]
    mask = sees[None, None] & state['key_valid'][:, None, None, :]
    logits, mutated = model.apply({'params': params, 'cache': state['kv']}, feed, pos, mask,
                                  token_types=types, predict_positions=jnp.ones((n, 1), jnp.int32),
                                  decode=True, mutable=['cache'])
    return logits[:, 0], {**state, 'kv': _rewind(mutated['cache']), 'index': c + 1}

  return step, dict(kv=kv)


def uncached_step_fn(model: nn.Module, params, *, mask_id: int, batch_size: int, max_len: int):
  """(step_fn, state) recomputing all `max_len` slots each step; call `prefill` first."""
  def step(state, tokens, position):
    c, n = state['index'], tokens.shape[0]
    position = jnp.broadcast_to(position, (n,))
    buf = state['tokens'].at[:, c].set(tokens).at[:, c + 1].set(mask_id)
    pos = state['positions'].at[:, c].set(_fed_position(state, c, position))
    pos = pos.at[:, c + 1].set(position + 1)
    slots = jnp.arange(max_len)
    valid = state['key_valid'] & (slots <= c + 1)[None, :]
    types = jnp.broadcast_to(slots >= state['start'], buf.shape).astype(jnp.int32)
    logits = model.apply({'params': params}, buf, pos, masks.seq2seq_mask(types, valid),
                         token_types=types, predict_positions=jnp.full((n, 1), c + 1))
    return logits[:, 0], {**state, 'tokens': buf, 'positions': pos, 'index': c + 1}

  zeros = jnp.zeros((batch_size, max_len), jnp.int32)
  return step, dict(tokens=zeros, positions=zeros)


def prefill(model: nn.Module, params, state, prompt, valid, restart_positions: bool = False):
  """Encodes the left-padded sources; returns (state, first token, start position).

  The search then starts from the source's eos (slot P - 1), as the module
  docstring describes; the start position is the eos's, or 0 with restart_positions.
  """
  batch, width = prompt.shape
  positions = _positions(valid)
  slots = max(x.shape[1] for x in jax.tree.leaves(state) if jnp.ndim(x) >= 2)
  key_valid = jnp.concatenate([jnp.asarray(valid, bool), jnp.ones((batch, slots - width), bool)],
                              1)
  state = {**state, 'key_valid': key_valid, 'index': jnp.int32(width - 1),
           'start': jnp.int32(width), 'eos_position': positions[:, -1]}
  if 'kv' in state:
    # The source, bidirectional: every slot sees every valid source slot.
    mask = (key_valid & (jnp.arange(slots) < width)[None, :])[:, None, None, :]
    mask = jnp.broadcast_to(mask, (batch, 1, width, slots))
    _, mutated = model.apply({'params': params, 'cache': state['kv']}, prompt, positions, mask,
                             token_types=jnp.zeros_like(prompt),
                             predict_positions=jnp.zeros((batch, 1), jnp.int32), decode=True,
                             mutable=['cache'])
    state['kv'] = _rewind(mutated['cache'])
  else:
    state['tokens'] = state['tokens'].at[:, :width].set(prompt)
    state['positions'] = state['positions'].at[:, :width].set(positions)
  start = jnp.zeros_like(positions[:, -1]) if restart_positions else positions[:, -1]
  return state, prompt[:, -1], start


def make_decoder(model: nn.Module, *, mask_id: int, eos_id: int, pad_id: int, batch_size: int,
                 prompt_width: int, max_len: int, beam_size: int, length_penalty: float,
                 no_repeat_ngram: int, cached: bool = True, restart_positions: bool = False):
  """Jitted (params, prompt, valid) -> best tokens int32 [N, max_len - prompt_width].

  beam_size 1 is greedy search. The model's position table bounds `max_len`.
  `restart_positions` must match the fine-tuning's finetune.target_positions.
  """
  steps = max_len - prompt_width
  if steps < 1:
    raise UserError(f'the prompt width {prompt_width} leaves no room to decode within '
                    f'{max_len} slots; raise finetune.seq_len or shorten the sources')
  make_step = cached_step_fn if cached else uncached_step_fn

  @jax.jit
  def run(params, prompt, valid):
    step, state = make_step(model, params, mask_id=mask_id, batch_size=batch_size,
                            max_len=max_len)
    state, first, pos = prefill(model, params, state, prompt, valid, restart_positions)
    if beam_size == 1:
      return search.greedy(step, state, first, max_len=steps, eos_id=eos_id, pad_id=pad_id,
                           start_position=pos, no_repeat_ngram=no_repeat_ngram)
    seqs, _ = search.beam_search(step, state, first, beam_size=beam_size, max_len=steps,
                                 eos_id=eos_id, length_penalty=length_penalty,
                                 no_repeat_ngram=no_repeat_ngram, pad_id=pad_id,
                                 start_position=pos)
    return seqs[:, 0]

  return run


def strip(ids, eos_id: int) -> list[int]:
  """Tokens before the first eos."""
  ids = list(np.asarray(ids))
  return ids[:ids.index(eos_id)] if eos_id in ids else ids
