"""plm's MLM (or CLM) train step on a mesh, built without a corpus (random BERT-vocabulary batches).

Shared by the layout benchmarks (memory_layouts.py, device_scaling.py): the
same sharded init and jitted, donating step as plm.train.setup, for any model
size and mesh.
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import xlm
from plm import models, partitioning, train
from plm.objectives import base, clm, mlm
# pylint: enable=g-import-not-at-top,wrong-import-position

VOCAB = 30522  # BERT's uncased WordPiece vocabulary
SPECIAL_IDS = (0, 2, 3, 4)  # pad, bos, eos, mask
MASK_ID = 4


def bert_config(size: str, num_predictions: int = 20):
  """configs/xlm.py re-shaped to BERT: segments, no languages, 512 positions, dropout 0.1."""
  c = xlm.get_config()
  c.model.size = size
  c.model.num_languages = 0
  c.model.num_segments = 2
  c.model.max_len = 512
  c.model.dropout = c.model.attention_dropout = 0.1
  c.objective.num_predictions = num_predictions
  c.optim.update(lr=1e-4, warmup_steps=10, total_steps=10_000, b1=0.9, b2=0.999)
  return c


def random_batch(batch: int, seq_len: int, seed: int = 0) -> dict:
  """Random tokens (throughput does not depend on content), one packed segment per row."""
  rng = np.random.RandomState(seed)
  shape = (batch, seq_len)
  return dict(tokens=rng.randint(max(SPECIAL_IDS) + 1, VOCAB, shape).astype(np.int32),
              segment_ids=np.ones(shape, np.int32),
              positions=np.broadcast_to(np.arange(seq_len, dtype=np.int32), shape).copy())


class ShardedStep:
  """The jitted train step and sharded init of `c` on `mesh` for `batch` rows."""

  def __init__(self, c, mesh, batch: dict):
    self.mesh, self.rules = mesh, partitioning.check_rules(c.rules)
    model = models.build(c.model, VOCAB)
    fn = clm.make() if c.objective.name == 'clm' else mlm.make(
        mask_id=MASK_ID, vocab_size=VOCAB, special_ids=SPECIAL_IDS,
        num_predictions=c.objective.num_predictions, rate=c.objective.mask_rate)
    # One head named after the objective, as plm.objectives.build makes it; a flat unigram
    # prior (its cost, not its value) and the configured chunked loss.
    objective = base.token_objective(
        'clm' if c.objective.name == 'clm' else 'mlm', fn,
        prior_logp=np.full(VOCAB, -np.log(VOCAB), np.float32), loss_chunk=c.train.loss_chunk)
    tx = train.make_optimizer(c.optim)
    example = jax.tree_util.tree_map(jnp.asarray, batch)

    def init(rng):
      inputs, _ = objective.prepare(rng, example, {})
      params = model.init(rng, **inputs)['params']
      return dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
                  rng=jax.random.PRNGKey(1))

    self.batch_sharding = partitioning.batch_sharding(mesh)
    with jax.set_mesh(mesh), nn.logical_axis_rules(self.rules):
      rng = jax.random.PRNGKey(0)
      self.state_sharding = partitioning.logical_shardings(mesh, self.rules,
                                                           jax.eval_shape(init, rng))
      unboxed = lambda r: nn.unbox(init(r))
      self.abstract_state = jax.eval_shape(unboxed, rng)
      step, _ = train.make_steps(model, objective, tx, 1, base.loss_weights(objective, None))
      # No frozen extras (MLM / CLM): the step's `extras` argument is {}.
      self.step = jax.jit(lambda state, batch: step(state, {}, batch),
                          in_shardings=(self.state_sharding, self.batch_sharding),
                          out_shardings=(self.state_sharding, partitioning.replicated(mesh)),
                          donate_argnums=0)
      self.init = jax.jit(unboxed, out_shardings=self.state_sharding)
    self.abstract_batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=self.batch_sharding)
                           for k, v in batch.items()}

  def lower(self):
    """The step lowered on abstract (sharded) shapes: nothing is allocated."""
    abstract = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        self.abstract_state, self.state_sharding)
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      return self.step.lower(abstract, self.abstract_batch)
