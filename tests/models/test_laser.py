"""LASER (plm/models/laser.py): padding never enters the BiLSTM nor wins the max-pool, the
BiLSTM equals a step-by-step numpy LSTM, the decoder sees only the pooled sentence vector,
and a tiny model learns to copy sequences through translation's objective and train step."""
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plm import models, partitioning, train
from plm.data import sentences
from plm.models import laser
from plm.objectives import translation

pytestmark = pytest.mark.model

V, PAD, EOS, BOS = 23, 0, 1, 2


def make_model(vocab=V, **fields):
  mc = models.config('laser')
  mc.update(embed_dim=6, layers=2, hidden=8, decoder_hidden=12, num_languages=2, lang_dim=3,
            dropout=0.0)
  mc.update(**fields)
  return models.build(mc, vocab)


def rows(lengths, row_len, seed=0):
  """[bos] ids [eos] pad..., one row per length (ids random, the same for a seed)."""
  rng = np.random.RandomState(seed)
  out = np.full((len(lengths), row_len), PAD, np.int32)
  for r, n in enumerate(lengths):
    out[r, :n + 2] = [BOS, *rng.randint(3, V, n), EOS]
  return out


def draw_params(model, seed=0, std=0.5):
  """Random params (std 0.5: every state depends on its inputs) drawn on the host."""
  src, tgt = jnp.asarray(rows([3], 6)), jnp.asarray(rows([2], 5))
  shapes = jax.eval_shape(lambda: nn.unbox(model.init(
      jax.random.PRNGKey(0), src, tgt_tokens=tgt, tgt_langs=jnp.zeros_like(tgt)))['params'])
  rng = np.random.RandomState(seed)
  return jax.tree_util.tree_map(
      lambda x: std * rng.standard_normal(x.shape).astype(np.float32), shapes)


@pytest.fixture(scope='module')
def model_params():
  model = make_model()
  return model, draw_params(model)


def test_build_registry_and_logical_axes():
  model = models.build(models.config('laser'), 100)
  src, tgt = jnp.asarray(rows([4, 1], 7)), jnp.asarray(rows([3, 2], 6))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), src, tgt_tokens=tgt))
  partitioning.check_logical_axes(partitioning.DEFAULT_RULES, variables)  # every axis has a rule
  specs = jax.tree_util.tree_leaves(nn.get_partition_spec(variables))
  assert specs and all(len(s) >= 1 for s in specs)  # every parameter is named
  mc = models.config('laser')
  logits = jax.eval_shape(lambda v: model.apply(v, src, tgt_tokens=tgt), variables)
  assert logits.shape == (2, 6, 100) and logits.dtype == jnp.float32
  assert jax.eval_shape(lambda v: model.apply(v, src, method='embed'), variables).shape == (
      2, 2 * mc.hidden)


def test_unknown_field_names_the_close_match():
  mc = models.config('laser')
  mc.hiden = 3
  with pytest.raises(ValueError, match=r'model\.hiden \(did you mean model\.hidden\?\)'):
    models.build(mc, 10)


def test_max_pool_ignores_padding(model_params):
  model, params = model_params
  lengths = [1, 4, 6]
  tight = rows(lengths, 8)  # the longest row has no padding
  padded = np.concatenate([tight, np.zeros((3, 9), np.int32)], axis=1)  # 9 more pads each
  e_tight = model.apply({'params': params}, jnp.asarray(tight), method='embed')
  e_padded = model.apply({'params': params}, jnp.asarray(padded), method='embed')
  np.testing.assert_array_equal(np.asarray(e_tight), np.asarray(e_padded))
  # and a row alone (no padding at all) embeds as in the padded batch
  alone = model.apply({'params': params}, jnp.asarray(tight[:1, :3]), method='embed')
  np.testing.assert_allclose(np.asarray(alone[0]), np.asarray(e_padded[0]), atol=1e-6)
  # every value is a max over real tokens: finite, and at most the real states' max
  states = np.asarray(model.apply({'params': params}, jnp.asarray(padded), method='encode'))
  assert np.all(states[padded == PAD] == 0.0)
  for r, n in enumerate(lengths):
    np.testing.assert_allclose(e_padded[r], states[r, :n + 2].max(0), atol=1e-6)


def numpy_lstm(p, xs, reverse=False, h=None, c=None):
  """An LSTM step by step over xs [T, in]: gates i, f, g, o (sigmoid, sigmoid, tanh, sigmoid),
  each with its own [in, H] and [H, H] kernel blocks and bias; outputs h [T, H]."""
  sig = lambda z: 1 / (1 + np.exp(-z))
  hidden = p['recurrent_kernel'].shape[0]
  block = lambda name, k: p[name][..., k * hidden:(k + 1) * hidden]
  h = np.zeros(hidden) if h is None else h
  c = np.zeros(hidden) if c is None else c
  out = []
  order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
  for t in order:
    gate = lambda k: xs[t] @ block('input_kernel', k) + h @ block('recurrent_kernel', k) + block(
        'bias', k)
    i, f, g, o = sig(gate(0)), sig(gate(1)), np.tanh(gate(2)), sig(gate(3))
    c = f * c + i * g
    h = o * np.tanh(c)
    out.append(h)
  out = np.stack(out)
  return out[::-1] if reverse else out


def test_bilstm_matches_numpy_step_by_step(model_params):
  model, params = model_params
  lengths = [5, 2, 0]  # real tokens: 7, 4 and 2 with bos/eos
  tokens = rows(lengths, 9, seed=3)
  got = np.asarray(model.apply({'params': params}, jnp.asarray(tokens), method='encode'))
  p = jax.tree_util.tree_map(np.asarray, params)['encoder']
  for r, n in enumerate(lengths):
    x = p['embed']['embedding'][tokens[r, :n + 2]]
    for layer in range(2):
      x = np.concatenate([numpy_lstm(p[f'bilstm_{layer}_forward'], x),
                          numpy_lstm(p[f'bilstm_{layer}_backward'], x, reverse=True)], -1)
    np.testing.assert_allclose(got[r, :n + 2], x, atol=1e-5)
    assert np.all(got[r, n + 2:] == 0.0)


def test_lstm_scan_gradients_match_autodiff_of_a_plain_loop():
  """laser.lstm_scan's hand-written backward pass against jax.grad of a plain lax.scan LSTM:
  two masked directions (held carries, as padding) and one unmasked with an initial
  state (the decoder), gradients of inputs, weights and initial states."""
  rng = np.random.RandomState(0)
  t, b, d, h = 6, 3, 5, 4
  r = lambda *shape: jnp.asarray(rng.standard_normal(shape).astype(np.float32))
  xs = (r(t, b, d), r(t, b, d), r(t, b, d))
  weights = tuple((r(d, 4 * h), r(h, 4 * h) * 0.5, r(4 * h)) for _ in range(3))
  valid = np.arange(t)[:, None] < np.array([6, 3, 1])[None, :]  # [T, B]: real steps per row
  masks = (jnp.asarray(valid[..., None]), jnp.asarray(valid[::-1, :, None]), None)
  h0s, c0s = (r(b, h), jnp.zeros((b, h)), r(b, h)), (r(b, h), jnp.zeros((b, h)), r(b, h))
  probe = r(3, t, b, h)

  def plain(xs, weights, h0s, c0s):
    out = []
    for x, (w_in, w_rec, bias), m, h_, c in zip(xs, weights, masks, h0s, c0s):
      def step(carry, inputs, w_in=w_in, w_rec=w_rec, bias=bias):
        x_t, keep = inputs
        i, f, g, o = jnp.split(x_t @ w_in + carry[0] @ w_rec + bias, 4, axis=-1)
        c_new = jax.nn.sigmoid(f) * carry[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
        new = (jax.nn.sigmoid(o) * jnp.tanh(c_new), c_new)
        new = tuple(jnp.where(keep, n, old) for n, old in zip(new, carry))
        return new, new[0]
      keep = jnp.ones((t, b, 1), bool) if m is None else m
      out.append(jax.lax.scan(step, (h_, c), (x, keep))[1])
    return out

  loss = lambda run: lambda *a: sum(jnp.sum(jnp.sin(s) * p) for s, p in zip(run(*a), probe))
  scan = lambda xs, weights, h0s, c0s: laser.lstm_scan(xs, weights, masks, h0s, c0s)
  args = (xs, weights, h0s, c0s)
  np.testing.assert_allclose(loss(scan)(*args), loss(plain)(*args), rtol=1e-5)
  got = jax.jit(jax.grad(loss(scan), argnums=(0, 1, 2, 3)))(*args)
  want = jax.jit(jax.grad(loss(plain), argnums=(0, 1, 2, 3)))(*args)
  for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    assert g.shape == w.shape
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
  # padded steps get no gradient: their inputs never entered the recurrence
  d_forward, d_backward = np.asarray(got[0][0]), np.asarray(got[0][1])
  assert np.all(d_forward[~valid] == 0) and np.all(d_backward[::-1][~valid] == 0)


def test_decoder_sees_only_the_pooled_vector(model_params):
  model, params = model_params
  variables = {'params': params}
  src_a, src_b = rows([4, 2], 8, seed=1), rows([1, 5], 8, seed=2)  # different tokens/lengths
  tgt = jnp.asarray(rows([3, 3], 6, seed=4))
  langs = jnp.asarray([[0], [1]]) * jnp.ones_like(tgt)
  run = lambda src: model.apply(variables, jnp.asarray(src), tgt_tokens=tgt, tgt_langs=langs)
  assert not np.allclose(run(src_a), run(src_b))  # the source matters...
  fixed = jnp.asarray(np.random.RandomState(5).standard_normal((2, 16)), jnp.float32)

  def same_vector(next_fun, args, kwargs, context):  # ...but only through embed()
    if context.method_name == 'embed' and isinstance(context.module, type(model)):
      return fixed
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(same_vector):
    out_a, out_b = run(src_a), run(src_b)
  np.testing.assert_array_equal(np.asarray(out_a), np.asarray(out_b))
  direct = model.apply(variables, fixed, tgt, langs, method='decode')
  np.testing.assert_allclose(out_a, model.apply(variables, direct, method='logits'), atol=1e-6)
  # and the jaxpr of the decoder half takes nothing from the source but the [B, 2H] vector
  jaxpr = jax.make_jaxpr(lambda s, t: model.apply(variables, s, t, langs, method='decode'))(
      fixed, tgt)
  assert [v.aval.shape for v in jaxpr.jaxpr.invars] == [(2, 16), tuple(tgt.shape)]


def test_copy_task_learns_through_translation_step():
  """Pair rows (plm.data.sentences.pair_rows) -> translation objective -> train.make_steps
  with plain optax: a tiny LASER learns to copy random short sequences."""
  start = time.time()
  rng = np.random.RandomState(0)
  pairs = [(ids, ids) for ids in (list(rng.randint(3, V, rng.randint(1, 6)))
                                  for _ in range(2048))]
  data = sentences.pair_rows(pairs, src_lang=0, tgt_lang=1, src_len=8, tgt_len=8, bos_id=BOS,
                             eos_id=EOS, pad_id=PAD).arrays
  model = make_model(embed_dim=32, layers=1, hidden=64, decoder_hidden=64, lang_dim=4)
  objective = translation.objective()
  tx = optax.adam(1e-2)
  step, eval_step = train.make_steps(model, objective, tx, 1, {'mt': 1.0})
  first = {k: jnp.asarray(v[:64]) for k, v in data.items()}
  inputs, _ = objective.prepare(jax.random.PRNGKey(0), first, {})
  params = nn.unbox(model.init(jax.random.PRNGKey(0), **inputs))['params']
  state = dict(params=params, opt_state=tx.init(params), step=jnp.zeros((), jnp.int32),
               rng=jax.random.PRNGKey(1))
  step = jax.jit(step)
  for i in range(300):
    at = (i * 64) % (len(pairs) - 64)
    state, metrics = step(state, {}, {k: jnp.asarray(v[at:at + 64]) for k, v in data.items()})
  assert np.isfinite(float(metrics['loss']))
  test_pairs = [(ids, ids) for ids in (list(rng.randint(3, V, rng.randint(1, 6)))
                                       for _ in range(256))]
  test = {k: jnp.asarray(v) for k, v in sentences.pair_rows(
      test_pairs, src_lang=0, tgt_lang=1, src_len=8, tgt_len=8, bos_id=BOS, eos_id=EOS,
      pad_id=PAD).arrays.items()}
  sums = jax.jit(eval_step)(state['params'], {}, test, jax.random.PRNGKey(2))
  forced = float(sums['mt/correct'] / sums['mt/weight'])
  chance = 1 / (V - 3)

  @jax.jit
  def greedy(params, src):  # feed back the argmax; the target language is 1 everywhere
    buf = jnp.zeros((src.shape[0], 7), jnp.int32).at[:, 0].set(BOS)
    def body(t, buf):
      logits = model.apply({'params': params}, src, tgt_tokens=buf, tgt_langs=jnp.ones_like(buf))
      return buf.at[:, t + 1].set(jnp.argmax(logits[:, t], -1))
    buf = jax.lax.fori_loop(0, 6, body, buf)
    last = jnp.argmax(model.apply({'params': params}, src, tgt_tokens=buf,
                                  tgt_langs=jnp.ones_like(buf))[:, 6], -1)
    return jnp.concatenate([buf[:, 1:], last[:, None]], 1)

  out = np.asarray(greedy(state['params'], test['src_tokens']))
  want = np.asarray(test['tgt_tokens'][:, 1:])
  real = want != PAD
  greedy_acc = float((out == want)[real].mean())
  print(f'copy task: teacher-forced accuracy {forced:.3f}, greedy {greedy_acc:.3f} '
        f'(chance {chance:.3f}), {time.time() - start:.1f}s')
  assert forced > 0.8 and greedy_acc > 0.7


def test_loss_chunk_matches_whole_logits(model_params):
  """train.loss_chunk reads `hidden` then `logits` in chunks: the same sums."""
  model, params = model_params
  data = sentences.pair_rows([([5, 6, 7], [8, 9]), ([4], [3, 10, 11, 12])], src_lang=0,
                             tgt_lang=1, src_len=6, tgt_len=7, bos_id=BOS, eos_id=EOS,
                             pad_id=PAD).arrays
  batch = {k: jnp.asarray(v) for k, v in data.items()}
  sums = [train.make_steps(model, translation.objective(loss_chunk=chunk), optax.sgd(0.1), 1,
                           {'mt': 1.0})[1](params, {}, batch, jax.random.PRNGKey(0))
          for chunk in (0, 2)]
  for key in sums[0]:
    np.testing.assert_allclose(sums[0][key], sums[1][key], rtol=1e-5)
