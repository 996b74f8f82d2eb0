"""EncoderClassifier: shapes and axis names, padding invariance, it trains, it is built by
name (models.config('classifier')), and the classify objective reads it right."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plm import masks, models
from plm.models.classifier import EncoderClassifier
from plm.models.encoder import Encoder
from plm.objectives import classify
from plm.objectives.base import ModelFn

pytestmark = pytest.mark.model

BOS, PAD, VOCAB, L, CLASSES = 2, 0, 30, 12, 3


def make_model(dropout=0.0):
  # One layer and dropout only in the head: CPU compile time dominates.
  return EncoderClassifier(Encoder(vocab_size=VOCAB, layers=1, hidden=16, heads=2, ff=32,
                                   dropout=0.0, attention_dropout=0.0, max_len=L),
                           num_classes=CLASSES, dropout=dropout)


def host_init(model, seed, std, *args, **kwargs):
  """Params drawn on the host: `model.init` would compile a threefry per tensor (~7 s)."""
  rng = np.random.default_rng(seed)

  def draw(path, x):
    name = jax.tree_util.keystr(path)
    if std is None or 'kernel' in name or 'embedding' in name:
      return nn.Partitioned(jnp.asarray(rng.normal(0, std or 0.5, x.value.shape), jnp.float32),
                            x.names)
    return nn.Partitioned(jnp.full(x.value.shape, 1.0 if 'scale' in name else 0.0), x.names)

  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *args, **kwargs)
  return jax.tree_util.tree_map_with_path(
      draw, shapes, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def padded(tokens, lengths):
  """bos-led rows, padding after `lengths`; returns tokens, positions, valid."""
  valid = np.arange(L)[None, :] < np.asarray(lengths)[:, None]
  tokens = np.where(valid, tokens, PAD).astype(np.int32)
  tokens[:, 0] = BOS
  positions = np.where(valid, np.arange(L), 0).astype(np.int32)
  return tokens, positions, valid


@pytest.fixture(scope='module')
def setup():
  model = make_model()
  rng = np.random.default_rng(0)
  tokens, positions, valid = padded(rng.integers(5, VOCAB, (4, L)), [12, 7, 3, 1])
  types = np.zeros_like(tokens)
  # Every tensor random and O(1) (std=None), so a wrongly wired input cannot
  # hide in tiny logits.
  params = host_init(model, 0, None, tokens, positions, masks.padding_mask(valid),
                     token_types=types)
  apply = jax.jit(lambda p, t, pos, v, ty: model.apply(
      p, t, pos, masks.padding_mask(v), token_types=ty))
  return model, params, apply, (tokens, positions, valid, types)


def test_shapes_and_logical_axes(setup):
  _, params, apply, (tokens, positions, valid, types) = setup
  logits = apply(params, tokens, positions, valid, types)
  assert logits.shape == (4, CLASSES) and logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all()
  specs = nn.get_partition_spec(params)['params']
  assert tuple(specs['pooler']['kernel']) == ('embed', 'mlp')
  assert tuple(specs['pooler']['bias']) == ('mlp',)
  assert tuple(specs['classifier']['kernel']) == ('mlp', 'classes')
  assert tuple(specs['classifier']['bias']) == ('classes',)


def test_logits_depend_only_on_valid_tokens(setup):
  _, params, apply, (tokens, positions, valid, types) = setup
  base = np.asarray(apply(params, tokens, positions, valid, types))
  rng = np.random.default_rng(1)
  noise_tokens = np.where(valid, tokens, rng.integers(5, VOCAB, tokens.shape)).astype(np.int32)
  noise_pos = np.where(valid, positions, rng.integers(0, L, tokens.shape)).astype(np.int32)
  noise_types = np.where(valid, types, 1).astype(np.int32)
  np.testing.assert_allclose(apply(params, noise_tokens, noise_pos, valid, noise_types), base,
                             rtol=1e-5, atol=1e-5)
  # Negative control: changing one valid (non-first) token moves the logits.
  changed = tokens.copy()
  changed[0, 5] = 5 + (changed[0, 5] - 4) % (VOCAB - 5)
  moved = np.abs(np.asarray(apply(params, changed, positions, valid, types)) - base)
  assert moved[0].max() > 1e-2 and moved[1:].max() == 0.0


def test_training_drives_loss_down():
  # Class c: tokens drawn from band c of the vocabulary; lengths vary.
  model = make_model(dropout=0.1)
  rng = np.random.default_rng(2)
  labels = rng.integers(0, CLASSES, 96)
  raw = 5 + 8 * labels[:, None] + rng.integers(0, 8, (96, L))
  tokens, positions, valid = padded(raw, rng.integers(2, L + 1, 96))
  batch = jax.tree_util.tree_map(
      jnp.asarray, dict(tokens=tokens, positions=positions, mask=masks.padding_mask(valid),
                        labels=labels.astype(np.int32)))
  tx = optax.adam(1e-2)

  def logits_fn(params, batch, rng=None):
    return model.apply(params, batch['tokens'], batch['positions'], batch['mask'],
                       deterministic=rng is None, rngs=None if rng is None else {'dropout': rng})

  def loss_fn(params, batch, rng=None):
    return optax.softmax_cross_entropy_with_integer_labels(
        logits_fn(params, batch, rng), batch['labels']).mean()

  @jax.jit  # one compile for 60 steps and both evaluations
  def train_eval(params, rng, batch):
    def step(carry, k):
      params, opt_state = carry
      updates, opt_state = tx.update(jax.grad(loss_fn)(params, batch, k), opt_state)
      return (optax.apply_updates(params, updates), opt_state), None

    (trained, _), _ = jax.lax.scan(step, (params, tx.init(params)),
                                   jax.random.split(rng, 60))
    accuracy = (jnp.argmax(logits_fn(trained, batch), -1) == batch['labels']).mean()
    return loss_fn(params, batch), loss_fn(trained, batch), accuracy

  # std 0.2: at BERT's 0.02 this 16-wide model merged two classes (loss stuck near 0.4)
  # for about half of the dropout seeds; at 0.2 eight seeds of eight reach < 0.3% of it
  params = host_init(model, 1, 0.2, batch['tokens'], batch['positions'], batch['mask'])
  before, after, accuracy = train_eval(params, jax.random.PRNGKey(0), batch)
  assert float(after) < 0.1 * float(before), (before, after)
  assert float(accuracy) > 0.9, accuracy


def test_built_by_name_from_its_config():
  """models.build on models.config('classifier') is this model; its fields are checked."""
  mc = models.config('classifier')
  mc.update(size='test', layers=1, hidden=16, heads=2, ff=32, max_len=L, dropout=0.0,
            attention_dropout=0.0, num_classes=CLASSES)
  model = models.build(mc, VOCAB)
  assert isinstance(model, EncoderClassifier) and model.num_classes == CLASSES
  want = make_model().encoder
  for field in ('vocab_size', 'layers', 'hidden', 'heads', 'ff', 'max_len', 'dropout',
                'num_segments', 'num_languages'):
    assert getattr(model.encoder, field) == getattr(want, field), field
  mc.num_classes = 1
  with pytest.raises(ValueError, match='model.num_classes=1: a classifier needs at least 2'):
    models.build(mc, VOCAB)
  mc.num_classes, mc.num_class = CLASSES, CLASSES
  with pytest.raises(ValueError, match=r'has no field model.num_class \(did you mean '
                     r'model.num_classes\?\)'):
    models.build(mc, VOCAB)
  lm = models.config('encoder_lm')
  lm.num_classes = CLASSES
  with pytest.raises(ValueError, match="model.name='encoder_lm' has no field model.num_classes"):
    models.build(lm, VOCAB)


def test_classify_objective_on_the_model(setup):
  """plm.objectives.classify: the padding mask of segment_ids, the label of each real row
  (an all-padding row, the filler of a last evaluation batch, weighs 0), the
  cross-entropy of the model's logits and the class-count baseline."""
  model, params, apply, (tokens, positions, valid, types) = setup
  labels = np.array([0, 2, 1, 2, 0], np.int32)
  batch = dict(tokens=np.concatenate([tokens, np.zeros((1, L), np.int32)]),
               positions=np.concatenate([positions, np.zeros((1, L), np.int32)]),
               segment_ids=np.concatenate([valid, np.zeros((1, L), bool)]).astype(np.int32),
               labels=labels)
  counts = np.array([5, 1, 2])
  objective = classify.make(counts)
  assert objective.heads == ('classify',)
  inputs, targets = objective.prepare(None, jax.tree_util.tree_map(jnp.asarray, batch), {})
  assert sorted(inputs) == ['mask', 'positions', 'tokens']
  np.testing.assert_array_equal(inputs['mask'], masks.padding_mask(batch['segment_ids'] > 0))
  np.testing.assert_array_equal(targets['classify']['ids'], labels)
  np.testing.assert_array_equal(targets['classify']['weights'], [1, 1, 1, 1, 0])
  sums = jax.jit(lambda p, i, t: objective.loss(ModelFn(model, p, {}, True), i, t, {}))(
      params, inputs, targets)
  sums = {k: float(v) for k, v in sums.items()}
  logits = np.asarray(apply(params, tokens, positions, valid, np.zeros_like(tokens)), np.float64)
  top = logits.max(-1, keepdims=True)
  logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
  real = labels[:4]
  prior = np.log((counts + 1) / (counts + 1).sum())
  want = dict(loss=-logp[np.arange(4), real].sum(), weight=4.0,
              correct=float((logits.argmax(-1) == real).sum()),
              unigram_loss=-prior[real].sum(), unigram_correct=float((real == 0).sum()))
  assert sorted(sums) == sorted(f'classify/{k}' for k in want)
  for k, v in want.items():
    assert sums[f'classify/{k}'] == pytest.approx(v, rel=1e-4, abs=1e-5), k
