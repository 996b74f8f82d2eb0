"""Greedy / beam search (plm/decode/search.py), on the KV-cached LM steps (plm/decode/lm.py)."""
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import masks
from plm.decode import lm, search
from plm.models.encoder import Encoder, EncoderLM

pytestmark = pytest.mark.model

V, L, B = 37, 16, 3
PAD, EOS = 0, 1


def _model(remat=False):
  return EncoderLM(Encoder(vocab_size=V, layers=2, hidden=32, heads=4, ff=64, dropout=0.0,
                           attention_dropout=0.0, max_len=L, num_segments=0, remat=remat))


@pytest.fixture(scope='module')
def params():
  """Random params large enough that the next token depends on the context
  (BERT's init, std 0.02, makes a 2-layer model nearly context-free)."""
  dummy = jnp.zeros((1, L), jnp.int32)
  shapes = jax.eval_shape(lambda: nn.unbox(_model().init(jax.random.PRNGKey(0), dummy, dummy,
                                                         None))['params'])
  rng = np.random.RandomState(0)
  def draw(path, x):
    noise = 0.3 * rng.standard_normal(x.shape).astype(np.float32)
    return noise + 1 if jax.tree_util.keystr(path).endswith("'scale']") else noise
  return jax.tree_util.tree_map_with_path(draw, shapes)


def _tokens(seed=1, shape=(B, L)):
  return jnp.asarray(np.random.RandomState(seed).randint(2, V, shape), jnp.int32)


def _run_steps(step, state, tokens, positions):
  """Feeds tokens[:, t] at positions[:, t]; returns logits [B, T, V]."""
  def body(state, x):
    logits, state = step(state, *x)
    return state, logits
  _, logits = jax.lax.scan(body, state, (tokens.T, positions.T))
  return jnp.swapaxes(logits, 0, 1)


@jax.jit
def _full(params, tokens, positions, valid):
  return _model().apply({'params': params}, tokens, positions, masks.causal_mask(valid))


@pytest.mark.parametrize('remat', [False, True])
def test_cached_step_matches_full_forward(params, remat):
  tokens = _tokens()
  positions = jnp.broadcast_to(jnp.arange(L), tokens.shape)
  want = _full(params, tokens, positions, jnp.ones(tokens.shape, bool))
  step, cache = lm.lm_step_fn(_model(remat), params, batch_size=B, max_len=L)
  got = jax.jit(_run_steps, static_argnums=0)(step, cache, tokens, positions)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  # Control: the logits do depend on the prefix, so a stale cache would show.
  changed = _full(params, tokens.at[:, 0].set(tokens[:, 0] + 1), positions,
                  jnp.ones(tokens.shape, bool))
  assert float(jnp.abs(changed[:, -1] - want[:, -1]).max(-1).min()) > 1e-2


@pytest.mark.parametrize('cached', [True, False])
def test_prefill_left_padded_prompts(params, cached):
  pads = np.array([0, 2, 4])
  prompt_len, new = 6, 5
  valid = jnp.asarray(np.arange(prompt_len)[None] >= pads[:, None])
  tokens = jnp.where(jnp.pad(valid, ((0, 0), (0, new)), constant_values=True),
                     _tokens(2, (B, prompt_len + new)), PAD)
  positions = jnp.maximum(jnp.cumsum(tokens != PAD, axis=1) - 1, 0)
  want = _full(params, tokens, positions, tokens != PAD)[:, prompt_len - 1:-1]

  make = lm.lm_step_fn if cached else lm.uncached_step_fn
  step, state = make(_model(), params, batch_size=B, max_len=L)
  prefill = jax.jit(lambda *args: lm.lm_prefill(_model(), params, *args))
  state, first, pos = prefill(state, tokens[:, :prompt_len], valid)
  np.testing.assert_array_equal(pos, prompt_len - 1 - pads)
  fed = jnp.concatenate([first[:, None], tokens[:, prompt_len:prompt_len + new - 1]], 1)
  got = jax.jit(_run_steps, static_argnums=0)(step, state, fed, pos[:, None] + jnp.arange(new))
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def _greedy(step, state, first, **kwargs):
  kwargs = {'max_len': L, 'eos_id': -1, **kwargs}
  return jax.jit(lambda s, f: search.greedy(step, s, f, **kwargs))(state, first)


def _beam(step, state, first, **kwargs):
  kwargs = {'max_len': L, 'eos_id': -1, **kwargs}
  return jax.jit(lambda s, f: search.beam_search(step, s, f, **kwargs))(state, first)


@pytest.fixture(scope='module')
def decoded(params):
  """Greedy tokens (no EOS) from the cached and the recomputing step."""
  first = _tokens()[:, 0]
  out = {}
  for name, make in (('cached', lm.lm_step_fn), ('uncached', lm.uncached_step_fn)):
    step, state = make(_model(), params, batch_size=B, max_len=L)
    out[name] = np.asarray(_greedy(step, state, first))
  return first, out


def test_cached_and_uncached_greedy_agree(decoded):
  _, out = decoded
  np.testing.assert_array_equal(out['cached'], out['uncached'])
  assert len({tuple(row) for row in out['cached']}) == B  # rows differ: context matters


def test_beam_size_one_is_greedy(params, decoded):
  first, out = decoded
  step, cache = lm.lm_step_fn(_model(), params, batch_size=B, max_len=L)
  # No length penalty: with one, a longer hypothesis may rightly beat greedy's.
  tokens, scores = _beam(step, cache, first, beam_size=1, length_penalty=0.0)
  np.testing.assert_array_equal(tokens[:, 0], out['cached'])
  assert tokens.shape == (B, 1, L) and scores.shape == (B, 1)


def test_cached_and_uncached_beams_agree(params):
  """Beam 3 reorders the KV cache (or the token buffer) on every step."""
  first = _tokens()[:, 0]
  results = []
  for make in (lm.lm_step_fn, lm.uncached_step_fn):
    step, state = make(_model(), params, batch_size=B, max_len=L)
    results.append(_beam(step, state, first, beam_size=3, max_len=8, eos_id=EOS))
  np.testing.assert_array_equal(results[0][0], results[1][0])
  np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-4)
  assert np.all(np.diff(results[0][1], axis=1) <= 0)  # best first


def test_eos_then_only_padding(params, decoded):
  first, out = decoded
  eos = int(out['cached'][0, 3])  # row 0 emits it at step 3 (maybe earlier too)
  step, cache = lm.lm_step_fn(_model(), params, batch_size=B, max_len=L)
  got = np.asarray(_greedy(step, cache, first, eos_id=eos))
  for row, free in zip(got, out['cached']):
    hits = np.flatnonzero(free == eos)
    end = hits[0] + 1 if hits.size else L
    np.testing.assert_array_equal(row[:end], free[:end])
    assert np.all(row[end:] == PAD)
  assert np.all(got[0, 4:] == PAD)
  tokens, _ = _beam(step, cache, first, beam_size=3, eos_id=eos)
  for hyp in np.asarray(tokens).reshape(-1, L):
    hits = np.flatnonzero(hyp == eos)
    if hits.size:
      assert np.all(hyp[hits[0] + 1:] == PAD)


# Hand-made step functions. Tokens: 0 pad, 1 eos, 2 bos, 3 A, 4 B, 5 C, 6 X.
BOS, A, B_, C, X = 2, 3, 4, 5, 6


def _table_step(probs, vocab=7):
  """step_fn whose next-token distribution depends on (previous token, token).

  The previous token lives in the cache, so beam search must reorder it.
  Unlisted contexts emit EOS.
  """
  table = np.full((vocab, vocab, vocab), 1e-9, np.float32)
  table[:, :, EOS] = 1.0
  for (prev, tok), dist in probs.items():
    table[prev, tok] = 1e-9
    for nxt, p in dist.items():
      table[prev, tok, nxt] = p
  logp = jnp.log(jnp.asarray(table))
  def step(cache, tokens, position):
    del position
    return logp[cache['prev'], tokens], {'prev': tokens}
  return step, {'prev': jnp.zeros((1,), jnp.int32)}


def test_beam_finds_better_sequence():
  # Greedy: A (.6) C (.4) eos = .24. Better: B (.4) X (1) eos (.8) = .32.
  step, cache = _table_step({(PAD, BOS): {A: .6, B_: .4}, (BOS, A): {C: .4, X: .3, B_: .3},
                             (BOS, B_): {X: 1.0}, (B_, X): {EOS: .8, C: .2},
                             (A, C): {EOS: 1.0}})
  first = jnp.array([BOS])
  greedy = _greedy(step, cache, first, max_len=5, eos_id=EOS)
  np.testing.assert_array_equal(greedy, [[A, C, EOS, PAD, PAD]])
  tokens, scores = _beam(step, cache, first, beam_size=2, max_len=5, eos_id=EOS,
                         length_penalty=0.0)
  np.testing.assert_array_equal(tokens[0], [[B_, X, EOS, PAD, PAD], [A, C, EOS, PAD, PAD]])
  np.testing.assert_allclose(scores[0], np.log([.32, .24]), atol=1e-5)


def test_length_penalty_changes_ranking():
  # "eos" (p .55, 1 token) vs "A B eos" (p .45, 3 tokens).
  step, cache = _table_step({(PAD, BOS): {EOS: .55, A: .45}, (BOS, A): {B_: 1.0},
                             (A, B_): {EOS: 1.0}})
  first = jnp.array([BOS])
  short, long = [EOS, PAD, PAD, PAD], [A, B_, EOS, PAD]
  for alpha, best in ((0.0, short), (2.0, long)):
    tokens, scores = _beam(step, cache, first, beam_size=2, max_len=4, eos_id=EOS,
                           length_penalty=alpha)
    want = {tuple(short): np.log(.55) / (6 / 6) ** alpha,
            tuple(long): np.log(.45) / (8 / 6) ** alpha}
    assert tokens[0, 0].tolist() == best
    np.testing.assert_allclose(scores[0], [want[tuple(t)] for t in tokens[0].tolist()],
                               atol=1e-5)


def test_beam_waits_for_a_longer_hypothesis():
  """Under a length penalty, a low-probability but long hypothesis can still win."""
  # eos (.5, 1 token), C eos (.3, 2 tokens), A B X C eos (.2, 5 tokens).
  step, cache = _table_step({(PAD, BOS): {EOS: .5, C: .3, A: .2}, (BOS, A): {B_: 1.0},
                             (A, B_): {X: 1.0}, (B_, X): {C: 1.0}})
  tokens, scores = _beam(step, cache, jnp.array([BOS]), beam_size=2, max_len=6, eos_id=EOS,
                         length_penalty=2.0)
  np.testing.assert_array_equal(tokens[0], [[A, B_, X, C, EOS, PAD], [EOS] + [PAD] * 5])
  np.testing.assert_allclose(scores[0], [np.log(.2) / (10 / 6)**2, np.log(.5)], atol=1e-5)


def _bigrams(first, seq):
  seq = [int(first)] + [int(t) for t in seq if t != PAD]
  return list(zip(seq, seq[1:]))


def test_no_repeat_ngram():
  # Cycles A -> B -> C -> A ...; with n = 2 the second "A B" is banned.
  step, cache = _table_step({(prev, tok): {A + (tok - A + 1) % 3: .9, X: .1}
                             for prev, tok in itertools.product(range(7), (A, B_, C))})
  first = jnp.array([A])
  free = _greedy(step, cache, first, max_len=6, eos_id=EOS)[0]
  assert len(set(_bigrams(A, free))) < len(_bigrams(A, free))  # control: it repeats
  for n in (2, 3):
    got = _greedy(step, cache, first, max_len=6, eos_id=EOS, no_repeat_ngram=n)[0]
    grams = [g for g in zip(*[[A, *got.tolist()][k:] for k in range(n)]) if PAD not in g]
    assert len(set(grams)) == len(grams), (n, got)
    tokens, _ = _beam(step, cache, first, beam_size=2, max_len=6, eos_id=EOS,
                      no_repeat_ngram=n)
    for hyp in tokens[0]:
      grams = [g for g in zip(*[[A, *hyp.tolist()][k:] for k in range(n)]) if PAD not in g]
      assert len(set(grams)) == len(grams), (n, hyp)
