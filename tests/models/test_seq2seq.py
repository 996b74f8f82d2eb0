"""Seq2Seq (plm/models/seq2seq.py) and its decoding (plm/decode/seq2seq.py): cached steps
equal teacher forcing, cross-attention keys/values are computed once, the masks hold cell
by cell, an XLM checkpoint's tree fits it, and a tiny one learns to reverse sequences."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plm import masks, models, partitioning
from plm.decode import seq2seq as sd

pytestmark = pytest.mark.model

V, B, LS, LT, MAX_LEN = 37, 3, 9, 7, 16
PAD, EOS, BOS = 0, 1, 2
SRC_LENGTHS = (9, 5, 2)


def make_model(vocab=V, **fields):
  mc = models.config('seq2seq')
  mc.update(size='test', layers=1, decoder_layers=2, hidden=32, heads=4, ff=64, max_len=MAX_LEN,
            num_languages=2, dropout=0.0, attention_dropout=0.0)
  mc.update(**fields)
  return models.build(mc, vocab)


def model_inputs(src, tgt, src_valid, tgt_valid=None, src_langs=None, tgt_langs=None):
  """The model's keyword inputs; positions count real tokens, languages per row."""
  tgt_valid = jnp.ones(tgt.shape, bool) if tgt_valid is None else tgt_valid
  pos = lambda v: jnp.maximum(jnp.cumsum(v, 1) - 1, 0).astype(jnp.int32)
  per_token = lambda ids, x: None if ids is None else jnp.broadcast_to(
      jnp.asarray(ids, jnp.int32)[:, None], x.shape)
  return dict(src_tokens=jnp.asarray(src), src_positions=pos(src_valid),
              src_mask=masks.padding_mask(src_valid), tgt_tokens=jnp.asarray(tgt),
              tgt_positions=pos(tgt_valid), tgt_mask=masks.causal_mask(tgt_valid),
              cross_mask=masks.cross_attention_mask(tgt_valid, src_valid),
              src_langs=per_token(src_langs, src), tgt_langs=per_token(tgt_langs, tgt))


def draw_params(model, inputs, seed=0):
  """Random params drawn on the host, large enough (std 0.3) that every output depends on
  its context (BERT's std 0.02 makes a small model nearly context-free)."""
  shapes = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.PRNGKey(0), **inputs))['params'])
  rng = np.random.RandomState(seed)
  def draw(path, x):
    noise = 0.3 * rng.standard_normal(x.shape).astype(np.float32)
    return noise + 1 if jax.tree_util.keystr(path).endswith("'scale']") else noise
  return jax.tree_util.tree_map_with_path(draw, shapes)


def batch(seed=1):
  """Sources [bos] ids [eos] right-padded to SRC_LENGTHS, random targets, languages."""
  rng = np.random.RandomState(seed)
  src_valid = np.arange(LS)[None, :] < np.array(SRC_LENGTHS)[:, None]
  src = np.where(src_valid, rng.randint(3, V, (B, LS)), PAD).astype(np.int32)
  src[:, 0] = BOS
  src[np.arange(B), np.array(SRC_LENGTHS) - 1] = EOS
  tgt = rng.randint(3, V, (B, LT)).astype(np.int32)
  tgt[:, 0] = BOS
  return src, tgt, src_valid, np.array([0, 1, 0]), np.array([1, 0, 1])


@pytest.fixture(scope='module')
def setup():
  model = make_model()
  src, tgt, src_valid, src_langs, tgt_langs = batch()
  inputs = model_inputs(src, tgt, src_valid, None, src_langs, tgt_langs)
  return model, draw_params(model, inputs), inputs, (src, tgt, src_langs, tgt_langs)


def run_steps(step, state, tokens):
  """Feeds tokens[:, t] at position t; returns the logits [B, T, V]."""
  def body(state, x):
    logits, state = step(state, *x)
    return state, logits
  _, logits = jax.lax.scan(body, state, (tokens.T, jnp.arange(tokens.shape[1])))
  return jnp.swapaxes(logits, 0, 1)


@pytest.mark.parametrize('fields', [{}, dict(post_ln=False, remat='full', share_embeddings=False)],
                         ids=['post_ln', 'pre_ln_remat_unshared'])
@pytest.mark.parametrize('cached', [True, False])
def test_steps_equal_teacher_forcing(fields, cached):
  """Step-by-step decoding (padded sources, one language per row) gives the teacher-forced
  logits at every slot; with the cache, its keys/values stay right step after step."""
  model = make_model(**fields)
  src, tgt, src_valid, src_langs, tgt_langs = batch()
  inputs = model_inputs(src, tgt, src_valid, None, src_langs, tgt_langs)
  params = draw_params(model, inputs)
  want = jax.jit(model.apply)({'params': params}, **inputs)

  @jax.jit
  def stepwise(params, src, tgt):
    make = sd.cached_step_fn if cached else sd.uncached_step_fn
    step, state = make(model, params, batch_size=B, src_len=LS, max_len=LT)
    state = sd.prefill(model, params, state, src, jnp.asarray(src_langs), jnp.asarray(tgt_langs),
                       pad_id=PAD)
    return run_steps(step, state, tgt)

  np.testing.assert_allclose(stepwise(params, src, tgt), want, atol=1e-5, rtol=1e-5)
  # Control: the last slot's logits depend on the first target token and on the source.
  for other in (model_inputs(src, np.where(np.arange(LT) == 0, 3, tgt), src_valid, None,
                             src_langs, tgt_langs),
                model_inputs(np.where(src == src[0, 1], src + 1, src), tgt, src_valid, None,
                             src_langs, tgt_langs)):
    changed = jax.jit(model.apply)({'params': params}, **other)
    assert float(jnp.abs(changed[:, -1] - want[:, -1]).max()) > 1e-2


@pytest.mark.parametrize('beam_size', [1, 3])
def test_cached_and_uncached_translations_agree(setup, beam_size):
  model, params, _, (src, _, src_langs, _) = setup
  out = {}
  for cached in (True, False):
    translate = sd.make_translator(model, batch_size=B, src_len=LS, max_len=10, bos_id=BOS,
                                   eos_id=EOS, pad_id=PAD, beam_size=beam_size,
                                   length_penalty=1.0, no_repeat_ngram=0, cached=cached)
    out[cached] = np.asarray(translate(params, src, src_langs, 1))
  np.testing.assert_array_equal(out[True], out[False])
  assert out[True].shape == (B, 10)
  assert len({tuple(row) for row in out[True]}) > 1, out[True]  # the output reads the source


def _dot_operand_shapes(jaxpr):
  """The operand shapes of every dot_general in `jaxpr`, its sub-jaxprs included."""
  shapes = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'dot_general':
      shapes.append(tuple(tuple(v.aval.shape) for v in eqn.invars))
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        sub = getattr(sub, 'jaxpr', sub)
        if hasattr(sub, 'eqns'):
          shapes.extend(_dot_operand_shapes(sub))
  return shapes


def test_cross_attention_keys_are_computed_once(setup):
  """The encoder output [B, Ls, H] is projected (2 matmuls a layer: keys, values) by the
  prefill only; a cached step has no such matmul, the uncached reference step has them."""
  model, params, _, (src, _, src_langs, tgt_langs) = setup
  encoded_shape = (B, LS, model.encoder.hidden)
  projections = lambda fn, *args: sum(
      encoded_shape in ops for ops in _dot_operand_shapes(jax.make_jaxpr(fn)(*args).jaxpr))
  layers = model.decoder.layers
  counts = {}
  for cached in (True, False):
    make = sd.cached_step_fn if cached else sd.uncached_step_fn
    step, state = make(model, params, batch_size=B, src_len=LS, max_len=LT)
    prefill = lambda state: sd.prefill(model, params, state, src, src_langs, tgt_langs,
                                       pad_id=PAD)
    counts[cached] = (projections(prefill, state),
                      projections(step, prefill(state), jnp.full((B,), BOS), jnp.int32(0)))
  # Both prefills run the encoder, whose layers have their own [B, Ls, H] matmuls.
  encoder_dots = counts[False][0]
  assert encoder_dots == 5 * model.encoder.layers, counts  # query, key, value, out, mlp/wi
  assert counts[True] == (encoder_dots + 2 * layers, 0), counts
  assert counts[False] == (encoder_dots, 2 * layers), counts
  # The step passes the cross-attention cache through untouched.
  step, state = sd.cached_step_fn(model, params, batch_size=B, src_len=LS, max_len=LT)
  state = sd.prefill(model, params, state, src, src_langs, tgt_langs, pad_id=PAD)
  _, after = jax.jit(step)(state, jnp.full((B,), BOS), jnp.int32(0))
  for i in range(layers):
    for name in ('cached_key', 'cached_value'):
      before = state['kv']['decoder'][f'layer_{i}']['cross_attention'][name]
      assert float(jnp.abs(before).max()) > 0
      np.testing.assert_array_equal(
          after['kv']['decoder'][f'layer_{i}']['cross_attention'][name], before)


def test_masks_cell_by_cell(setup):
  """Slot t's output changes exactly when a target token at or before t changes; a padded
  source token changes nothing, a real one changes every slot."""
  model, params, inputs, (src, tgt, src_langs, tgt_langs) = setup
  src_valid = src != PAD
  apply = jax.jit(lambda **kw: model.apply({'params': params}, **kw))
  base = np.asarray(apply(**inputs))
  moved = lambda a, b: np.abs(a - b).max(-1)  # [B, LT]
  for j in range(LT):
    other = tgt.copy()
    other[:, j] = 3 + (other[:, j] - 2) % (V - 3)
    diff = moved(apply(**model_inputs(src, other, src_valid, None, src_langs, tgt_langs)), base)
    assert (diff[:, :j] == 0).all(), (j, diff)
    assert (diff[:, j:] > 1e-4).all(), (j, diff)
  for row, col in zip(*np.nonzero(np.ones_like(src))):
    other = src.copy()
    other[row, col] = PAD + 1 + (other[row, col] + 7) % (V - 1) if src_valid[row, col] else 5
    changed = model_inputs(other, tgt, src_valid, None, src_langs, tgt_langs)  # same masks
    diff = moved(apply(**changed), base)
    assert (np.delete(diff, row, 0) == 0).all()
    if src_valid[row, col]:
      assert (diff[row] > 1e-4).all(), (row, col, diff)
    else:
      assert (diff[row] == 0).all(), (row, col, diff)


def test_config_and_xlm_checkpoint_fit():
  """Unknown fields name the close match; an XLM encoder_lm tree is the seq2seq's encoder and
  lm_head; every parameter axis has a default sharding rule."""
  mc = models.config('seq2seq')
  assert 'num_segments' not in mc and 'num_tasks' not in mc
  mc.decoder_layer = 2
  with pytest.raises(ValueError, match=r'has no field model.decoder_layer \(did you mean '
                     r'model.decoder_layers\?\)'):
    models.build(mc, V)
  with pytest.raises(ValueError, match='decoder_layers=0'):
    make_model(decoder_layers=0)
  model = make_model(layers=2, decoder_layers=None)
  assert model.decoder.layers == 2 and model.decoder.num_languages == 2

  xlm = models.config('encoder_lm')
  xlm.update(size='test', layers=2, hidden=32, heads=4, ff=64, max_len=MAX_LEN, num_segments=0,
             num_languages=2)
  ids = jnp.zeros((1, 4), jnp.int32)
  xlm_params = jax.eval_shape(lambda: models.build(xlm, V).init(
      jax.random.PRNGKey(0), ids, ids, None, langs=ids))['params']
  src, tgt, src_valid, src_langs, tgt_langs = batch()
  boxed = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), **model_inputs(
      src, tgt, src_valid, None, src_langs, tgt_langs)))
  partitioning.check_logical_axes(partitioning.DEFAULT_RULES, boxed)
  params = nn.unbox(boxed['params'])
  shapes = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype), nn.unbox(tree))
  assert shapes(xlm_params['encoder']) == shapes(params['encoder'])
  assert shapes(xlm_params['mlm_head']) == shapes(params['lm_head'])
  assert sorted(params) == ['decoder', 'encoder', 'lm_head']
  assert sorted(params['decoder']) == ['embed_ln', 'layer_0', 'layer_1']  # shared embeddings


def test_learns_to_reverse_sequences():
  """A tiny model trained with plain optax on random sequences reverses unseen ones by greedy
  decoding (chance: 10^-5 per sequence)."""
  n, vocab, steps, bs = 5, 13, 300, 64
  model = make_model(vocab, layers=2, hidden=64, heads=4, ff=128, num_languages=0)
  rng = np.random.RandomState(0)

  def examples(count):
    ids = rng.randint(3, vocab, (count, n)).astype(np.int32)
    bos, eos = np.full((count, 1), BOS, np.int32), np.full((count, 1), EOS, np.int32)
    rev = ids[:, ::-1]
    return np.concatenate([bos, ids, eos], 1), np.concatenate([bos, rev], 1), \
        np.concatenate([rev, eos], 1)

  src, tgt_in, _ = examples(bs)
  ones = lambda x: np.ones(x.shape, bool)
  params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), **model_inputs(
      src, tgt_in, ones(src))))['params']
  tx = optax.adam(3e-3)

  @jax.jit
  def train_step(params, opt_state, src, tgt_in, tgt_out):
    def loss_fn(p):
      logits = model.apply({'params': p}, **model_inputs(src, tgt_in, ones(src)))
      return optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = tx.init(params)
  for _ in range(steps):
    params, opt_state, loss = train_step(params, opt_state, *examples(bs))
  src, _, tgt_out = examples(bs)
  translate = sd.make_translator(model, batch_size=bs, src_len=n + 2, max_len=n + 1, bos_id=BOS,
                                 eos_id=EOS, pad_id=PAD, beam_size=1, length_penalty=1.0,
                                 no_repeat_ngram=0)
  out = np.asarray(translate(params, src, None, None))
  accuracy = (out == tgt_out).all(1).mean()
  assert accuracy > 0.9, (float(loss), accuracy)
