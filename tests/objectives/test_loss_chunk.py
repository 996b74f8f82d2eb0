"""train.loss_chunk: the chunked (memory-efficient) cross-entropy is the same step, in less memory."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plm import models, run, train
from plm import workdir as workdir_lib
from plm.jobs import pretrain
from plm.objectives import base, clm
from plm.objectives.losses import chunked_cross_entropy

pytestmark = pytest.mark.model


def one_step(config):
  config = run.resolve(config)
  tokenizer = workdir_lib.load_tokenizer(config, '')
  task = pretrain.make_task(config, tokenizer)
  s = train.setup(config, task)
  batch = task.train_rows.batch(0, config.train.batch_size, seed=config.seed)
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(0), s.extras)
    state, metrics = s.train_step(state, s.extras, s.put(batch))
  return jax.device_get(state['params']), jax.device_get(metrics)


@pytest.mark.parametrize('objective', ['clm', 'mlm'])
def test_chunked_loss_is_the_same_step(tiny_config, objective, monkeypatch):
  """Same loss, accuracy and updated params, dropout on (the chunks see the same masks)."""
  config = tiny_config.copy_and_resolve_references()
  config.objective.name = objective
  config.model.dropout = config.model.attention_dropout = 0.1
  config.optim.warmup_steps = 0
  # A large eps makes the first AdamW update ~ lr * gradient (not its sign), so comparing
  # the updated params compares the gradients.
  config.optim.eps, config.optim.lr, config.optim.weight_decay = 1.0, 1.0, 0.0
  calls = []  # the config reaches the step
  monkeypatch.setattr(base, 'chunked_cross_entropy',
                      lambda *args: calls.append(args[-1]) or chunked_cross_entropy(*args))
  params_full, metrics_full = one_step(config)
  assert not calls  # train.loss_chunk=0: the whole logits at once
  # CLM predicts at every position of the row; MLM at objective.num_predictions slots.
  positions = config.data.seq_len if objective == 'clm' else config.objective.num_predictions
  config.train.loss_chunk = positions // 4
  params_chunk, metrics_chunk = one_step(config)
  assert calls and set(calls) == {positions // 4}
  for key in ('loss', 'accuracy', f'{objective}/loss', 'grad_norm'):
    np.testing.assert_allclose(metrics_full[key], metrics_chunk[key], rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(params_full), jax.tree_util.tree_leaves(params_chunk)):
    np.testing.assert_allclose(a, b, atol=1e-6)


def temp_bytes(loss_chunk, vocab=16_000, batch=4, length=64):
  """Compiled temporaries of one CLM gradient on a tiny encoder with a large vocabulary."""
  model = models.build(models_config(), vocab)
  tx = train.make_optimizer(optim_config())
  objective = base.token_objective('clm', clm.make(), prior_logp=np.zeros(vocab, np.float32),
                                   loss_chunk=loss_chunk)
  step, _ = train.make_steps(model, objective, tx, 1, {'clm': 1.0})
  tokens = jnp.ones((batch, length), jnp.int32)
  batch_ = dict(tokens=tokens, segment_ids=jnp.ones_like(tokens),
                positions=jnp.broadcast_to(jnp.arange(length), tokens.shape))
  inputs, _, _ = clm.make()(None, batch_)
  params = nn.unbox(model.init(jax.random.PRNGKey(0), **inputs)['params'])
  state = dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
               rng=jax.random.PRNGKey(1))
  compiled = jax.jit(step).lower(state, {}, batch_).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def models_config():
  from configs import xlm  # pylint: disable=g-import-not-at-top
  c = xlm.get_config('tiny').model
  c.num_languages = 0
  return c


def optim_config():
  from configs import xlm  # pylint: disable=g-import-not-at-top
  return xlm.get_config('tiny').optim


def test_chunked_loss_keeps_the_full_logits_out_of_memory():
  logits_bytes = 4 * 64 * 16_000 * 4  # [batch, length, vocab] float32
  full, chunked = temp_bytes(0), temp_bytes(8)
  assert full >= logits_bytes  # the unchunked step holds the whole logits tensor
  assert full - chunked >= logits_bytes // 2, (full, chunked)


def test_loss_chunk_errors():
  hidden = jnp.zeros((2, 10, 4))
  with pytest.raises(ValueError, match='must be > 0 and divide the 10 predicted positions'):
    chunked_cross_entropy(lambda h: h, hidden, jnp.zeros((2, 10), jnp.int32), jnp.ones((2, 10)), 4)
  from configs import xlm  # pylint: disable=g-import-not-at-top
  config = xlm.get_config('tiny')
  config.model = models.config('classifier')
  config.model.num_classes = 3
  config.train.loss_chunk = 4
  classifier = models.build(config.model, 100)
  objective = base.token_objective('clm', clm.make(), loss_chunk=4)
  task = train.Task('classify', classifier, config.model, objective, train_rows=None,
                    heldout=None)
  with pytest.raises(ValueError, match='train.loss_chunk=4 needs a language model .* '
                     'EncoderClassifier has no vocabulary head: set train.loss_chunk=0'):
    train.setup(config, task)
