"""Greedy and beam-search decoding over a step function.

The searches know the model only through

  step_fn(cache, tokens [N], position int32 [] or [N]) -> (logits [N, V], cache)

which feeds `tokens` at `position` and returns the next-token logits. `cache` is
any pytree; leaves with a leading dim of N are per-row (beam search tiles and
reorders them), other leaves (e.g. flax's scalar `cache_index`) are shared. So
UNILM (unilm.py), the encoder-decoder (seq2seq.py) and CLM (lm.py) plug in
by writing their own step_fn.

Step i (0-based) feeds the previous token (`first_token` at i = 0) at
`start_position + i` and picks output token i; outputs exclude `first_token`.
After EOS a row holds only `pad_id`.
"""
import jax
import jax.numpy as jnp

Array = jax.Array
NEG_INF = -jnp.inf


def gnmt_length_penalty(length, alpha: float):
  """GNMT's ((5 + length) / 6) ** alpha (Wu et al. 2016); scores are logp / this."""
  return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def banned_tokens(history: Array, i, n: int, vocab_size: int) -> Array:
  """bool [N, V]: next tokens that would repeat an n-gram of history[:, :i + 1].

  history [N, H] holds the fed tokens; entries after index i are ignored.
  """
  num, size = history.shape
  width = size - n + 1  # n-gram start slots
  if width <= 0:
    return jnp.zeros((num, vocab_size), bool)
  start = jnp.maximum(i + 2 - n, 0)
  suffix = jax.lax.dynamic_slice_in_dim(history, start, max(n - 1, 1), axis=1)
  # An n-gram starting at j is complete in the history iff j + n - 1 <= i.
  match = jnp.broadcast_to(jnp.arange(width) + n - 1 <= i, (num, width))
  for k in range(n - 1):
    match &= history[:, k:k + width] == suffix[:, k:k + 1]
  rows = jnp.arange(num)[:, None]
  hits = jnp.zeros((num, vocab_size), jnp.int32).at[rows, history[:, n - 1:]].add(
      match.astype(jnp.int32))
  return hits > 0


def greedy(step_fn, cache, first_token: Array, *, max_len: int, eos_id: int, pad_id: int = 0,
           start_position=0, no_repeat_ngram: int = 0) -> Array:
  """Argmax decoding of `max_len` tokens: int32 [B, max_len]. Jittable.

  Stops early (lax.while_loop) once every row has emitted `eos_id`.
  """
  batch = first_token.shape[0]
  first = first_token.astype(jnp.int32)
  start = jnp.asarray(start_position, jnp.int32)

  def body(state):
    i, seqs, last, done, cache = state
    logits, cache = step_fn(cache, last, start + i)
    logits = logits.astype(jnp.float32)
    if no_repeat_ngram:
      history = jnp.concatenate([first[:, None], seqs], axis=1)
      logits = jnp.where(banned_tokens(history, i, no_repeat_ngram, logits.shape[-1]),
                         NEG_INF, logits)
    token = jnp.where(done, pad_id, jnp.argmax(logits, -1).astype(jnp.int32))
    return i + 1, seqs.at[:, i].set(token), token, done | (token == eos_id), cache

  def cond(state):
    return (state[0] < max_len) & ~jnp.all(state[3])

  init = (jnp.int32(0), jnp.full((batch, max_len), pad_id, jnp.int32), first,
          jnp.zeros((batch,), bool), cache)
  return jax.lax.while_loop(cond, body, init)[1]


def _per_row(cache, rows: int):
  return lambda fn: jax.tree.map(
      lambda x: fn(x) if jnp.ndim(x) >= 1 and x.shape[0] == rows else x, cache)


def beam_search(step_fn, cache, first_token: Array, *, beam_size: int, max_len: int, eos_id: int,
                length_penalty: float = 1.0, no_repeat_ngram: int = 0, pad_id: int = 0,
                start_position=0):
  """Beam search: (tokens int32 [B, beam, max_len], scores [B, beam]), best first. Jittable.

  A hypothesis is finished when it emits `eos_id` or reaches `max_len` tokens;
  its score is sum(log p) / length_penalty(length) with length counting the EOS.
  Keeps `beam_size` alive and `beam_size` finished hypotheses (t5x-style) and
  stops once no alive one can still beat the worst finished one. Slots with no
  finished hypothesis (only if most candidates are banned) score -inf.
  """
  alpha, lp = length_penalty, gnmt_length_penalty
  batch, k = first_token.shape[0], beam_size
  cache = _per_row(cache, batch)(lambda x: jnp.repeat(x, k, axis=0))
  start = jnp.asarray(start_position, jnp.int32)
  if start.ndim:
    start = jnp.repeat(start, k)

  def body(state):
    i, hist, alive_logp, fin_seqs, fin_scores, cache = state  # hist [B, k, 1 + max_len]
    logits, cache = step_fn(cache, hist[:, :, i].reshape(-1), start + i)
    vocab = logits.shape[-1]
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    if no_repeat_ngram:
      ban = banned_tokens(hist.reshape(batch * k, -1), i, no_repeat_ngram, vocab)
      logp = jnp.where(ban, NEG_INF, logp)
    cand = alive_logp[..., None] + logp.reshape(batch, k, vocab)
    # 2k candidates leave k that do not end in EOS.
    top_logp, top_idx = jax.lax.top_k(cand.reshape(batch, k * vocab), 2 * k)
    parent, token = top_idx // vocab, top_idx % vocab
    hist = jnp.take_along_axis(hist, parent[..., None], 1).at[:, :, i + 1].set(token)
    ends = (token == eos_id) | (i == max_len - 1)
    new_scores = jnp.where(ends, top_logp / lp(i + 1, alpha), NEG_INF)
    fin_scores, idx = jax.lax.top_k(jnp.concatenate([fin_scores, new_scores], 1), k)
    fin_seqs = jnp.take_along_axis(jnp.concatenate([fin_seqs, hist[:, :, 1:]], 1),
                                   idx[..., None], 1)
    alive_logp, idx = jax.lax.top_k(jnp.where(ends, NEG_INF, top_logp), k)
    hist = jnp.take_along_axis(hist, idx[..., None], 1)
    rows = (jnp.arange(batch)[:, None] * k + jnp.take_along_axis(parent, idx, 1)).reshape(-1)
    cache = _per_row(cache, batch * k)(lambda x: x[rows])
    return i + 1, hist, alive_logp, fin_seqs, fin_scores, cache

  def cond(state):
    i, _, alive_logp, _, fin_scores, _ = state
    # log p only falls, and lp is monotonic in length: the best reachable score
    # is the best alive log p over lp at the shortest or the longest length.
    best = alive_logp[:, 0]
    bound = jnp.maximum(best / lp(i + 1, alpha), best / lp(max_len, alpha))
    return (i < max_len) & ~jnp.all(fin_scores[:, -1] >= bound)

  hist = jnp.full((batch, k, 1 + max_len), pad_id, jnp.int32)
  hist = hist.at[:, :, 0].set(first_token.astype(jnp.int32)[:, None])
  alive_logp = jnp.where(jnp.arange(k) == 0, 0.0, NEG_INF) * jnp.ones((batch, 1))
  init = (jnp.int32(0), hist, alive_logp, jnp.full((batch, k, max_len), pad_id, jnp.int32),
          jnp.full((batch, k), NEG_INF), cache)
  _, _, _, fin_seqs, fin_scores, _ = jax.lax.while_loop(cond, body, init)
  return fin_seqs, fin_scores
