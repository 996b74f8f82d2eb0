"""The one training loop, for pre-training and fine-tuning alike: mesh, input,
model + optimizer, sharded init, step, restore, evaluation, loop. Read top to bottom.

A job hands the loop a `Task` (rows, held-out sets, objective, model) built by
the layers below; the loop knows nothing of any model family.
"""
import functools
import os
import signal
import types
from typing import Any, Callable, Mapping, NamedTuple

from absl import logging
import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh
from tensorboardX import SummaryWriter

from plm import checkpoint, models, partitioning, progress
from plm import meta as meta_lib
from plm import workdir as workdir_lib
from plm.data.dataset import Dataset
from plm.errors import MissingFileError, UserError
from plm.evaluate import heldout
from plm.objectives.base import ModelFn, Objective, loss_weights

NonFiniteLossError = progress.NonFiniteLossError
# Parameters AdamW does not decay (BERT's recipe): biases, LayerNorm and embedding-LN scales.
NO_DECAY = ('bias', 'scale')


class Task(NamedTuple):
  """What the loop trains and evaluates; built by a job."""
  name: str  # 'pretrain', 'classify', 'generate', ...: saved in the checkpoint meta
  model: nn.Module
  model_config: ml_collections.ConfigDict  # what the params are (checkpoint meta, config.json)
  objective: Objective
  train_rows: Dataset  # batch(step, size, seed=...) and iterator(...): plm/data/dataset.py
  heldout: Callable  # split -> {set name: Rows}
  evaluators: tuple = ()  # (name, every, (params, split) -> table, log(table, step, writer))
  report: Callable | None = None  # (params, test table) -> extra results
  # (saved params, fresh params) -> params for config.init_from; None = plm.models.init_map
  # (every top-level part the saved run holds with the same shapes)
  init_map: Callable | None = None
  # top-level param names never updated (no gradient, no optimizer state): a frozen encoder
  frozen: tuple = ()
  # what a checkpoint must match besides the model and data: the vocabulary
  # (plm.meta.of_tokenizer), or a knowledge graph's fingerprint and size
  meta: Mapping = types.MappingProxyType({})


def learning_rate(c) -> optax.Schedule:
  """optim.*'s schedule: linear warmup, then linear or cosine decay (count = updates done)."""
  horizon = max(c.total_steps - c.warmup_steps, 1)
  decays = {'linear': lambda: optax.linear_schedule(c.lr, 0.0, horizon),
            'cosine': lambda: optax.cosine_decay_schedule(c.lr, horizon)}
  if c.schedule not in decays:
    raise UserError(f'optim.schedule={c.schedule!r}: use one of {sorted(decays)}')
  return optax.join_schedules([optax.linear_schedule(0.0, c.lr, c.warmup_steps),
                               decays[c.schedule]()], [c.warmup_steps])


def make_optimizer(c) -> optax.GradientTransformation:
  """AdamW with linear warmup, linear or cosine decay and global-norm clipping."""
  lr = learning_rate(c)
  return optax.chain(optax.clip_by_global_norm(c.grad_clip),
                     optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay,
                                 mask=decay_mask))


def freeze(tx: optax.GradientTransformation, frozen: tuple) -> optax.GradientTransformation:
  """`tx` on every top-level part of the params but `frozen`, which get zero updates and no
  optimizer state (so clipping and Adam see the trained parts only)."""
  if not frozen:
    return tx

  def labels(params):
    if missing := sorted(set(frozen) - set(params)):
      raise UserError(f'Task.frozen names {missing}, which the params do not have; their '
                      f'top-level parts are {sorted(params)}')
    return {k: 'frozen' if k in frozen else 'train' for k in params}

  return optax.partition({'train': tx, 'frozen': optax.set_to_zero()}, labels)


def decay_mask(params):
  """True where AdamW decays: by parameter name, not rank (q/k/v biases are 2-D)."""
  flat = flax.traverse_util.flatten_dict(params)
  return flax.traverse_util.unflatten_dict({k: k[-1] not in NO_DECAY for k in flat})


def make_steps(model, objective: Objective, tx, accum_steps: int, weights: dict,
               skip_nonfinite: bool = False, frozen: tuple = ()):
  """Returns the pure (unjitted) train and eval step functions.

  The objective runs once on the whole batch; each head's loss sum is divided by
  its weight over the whole batch, so accumulating A micro-batches is the same
  update as one A-times larger batch (dropout aside). The `frozen` top-level
  params are constants of the loss: no backward pass through them, zero gradients.
  """
  heads = objective.heads

  def total_loss(params, extras, example, denoms, k_drop, deterministic):
    if frozen:
      params = {k: jax.lax.stop_gradient(v) if k in frozen else v for k, v in params.items()}
    inputs, targets = example
    fn = ModelFn(model, {'params': params}, {'dropout': k_drop}, deterministic)
    sums = objective.loss(fn, inputs, targets, extras)
    return sum(weights[h] * sums[f'{h}/loss'] / denoms[h] for h in heads), sums

  def train_step(state, extras, batch):
    k_obj, k_drop = jax.random.split(jax.random.fold_in(state['rng'], state['step']))
    example = objective.prepare(k_obj, batch, extras)
    denoms = {h: jnp.maximum(jnp.sum(example[1][h]['weights']), 1.0) for h in heads}
    grad_fn = jax.grad(functools.partial(total_loss, deterministic=False), has_aux=True)
    if accum_steps == 1:  # no loop: XLA:CPU copies every parameter into a while body
      grads, sums = grad_fn(state['params'], extras, example, denoms, k_drop)
    else:  # micro-batches [A, B/A, ...]: gradients of the fixed-denominator losses add up
      micro = jax.tree_util.tree_map(lambda x: x.reshape((accum_steps, -1) + x.shape[1:]),
                                     example)
      first = jax.tree_util.tree_map(lambda x: x[0], micro)
      zero = lambda tree: jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), tree)
      carry = zero(jax.eval_shape(grad_fn, state['params'], extras, first, denoms, k_drop))

      def accumulate(carry, xs):
        i, mb = xs
        out = grad_fn(state['params'], extras, mb, denoms, jax.random.fold_in(k_drop, i))
        return jax.tree_util.tree_map(jnp.add, carry, out), None

      (grads, sums), _ = jax.lax.scan(accumulate, carry, (jnp.arange(accum_steps), micro))
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    new_state = dict(params=optax.apply_updates(state['params'], updates),
                     opt_state=opt_state, step=state['step'] + 1, rng=state['rng'])
    loss = sum(weights[h] * sums[f'{h}/loss'] / denoms[h] for h in heads)
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    if skip_nonfinite:  # keep the old params and optimizer state; count the skip
      keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)
      new_state.update(params=keep(new_state['params'], state['params']),
                       opt_state=keep(opt_state, state['opt_state']))
    tokens = jnp.asarray(objective.count_tokens(batch), jnp.float32)
    metrics = dict(loss=loss, tokens=tokens, grad_norm=grad_norm,
                   skipped=1.0 - finite.astype(jnp.float32))
    for h in heads:
      metrics[f'{h}/loss'] = sums[f'{h}/loss'] / denoms[h]
      if len(heads) > 1 and f'{h}/weight' in sums:  # weight 0: logs nothing (plm/progress.py)
        metrics[f'{h}/weight'] = sums[f'{h}/weight']
      if f'{h}/correct' in sums:
        metrics[f'{h}/accuracy'] = sums[f'{h}/correct'] / denoms[h]
    if f'{heads[0]}/accuracy' in metrics:
      metrics['accuracy'] = metrics[f'{heads[0]}/accuracy']
    return new_state, metrics

  def eval_step(params, extras, batch, rng):
    example = objective.prepare(rng, batch, extras)
    return total_loss(params, extras, example, {h: 1.0 for h in heads}, rng, True)[1]

  return train_step, eval_step


def evaluate(s: 'Setup', params, datasets: dict, rng) -> dict:
  """Held-out table {set: {head: loss, perplexity, accuracy, unigram baseline}}."""
  return heldout.table(lambda batch: s.eval_step(params, s.extras, s.put(batch), rng), datasets,
                       s.eval_batch_size, process_index=jax.process_index(),
                       process_count=jax.process_count())


class Setup(NamedTuple):
  """Everything a run builds before its first step."""
  mesh: Mesh
  init: Callable  # (rng, extras) -> state, jitted, writes straight into shards
  abstract_state: Any
  state_sharding: Any
  extras: Any  # frozen arrays the step reads (sharded); {} when the objective has none
  train_step: Callable  # (state, extras, global batch) -> (state, metrics), jitted, donates state
  eval_step: Callable  # (params, extras, batch, rng) -> metric sums, jitted
  put: Callable  # process-local numpy batch -> global sharded arrays
  meta: dict  # what a checkpoint must match to resume
  eval_batch_size: int
  init_map: Callable  # Task.init_map or plm.models.init_map: saved params onto fresh ones


def setup(config, task: Task, devices=None) -> Setup:
  """Mesh, optimizer, extras and the sharded, jitted init and steps of `task`."""
  tc = config.train
  # ----- Mesh -----
  mesh = partitioning.make_mesh(dict(config.mesh), devices)
  rules = partitioning.check_rules(config.rules)
  dp = partitioning.data_parallel_size(mesh)
  if tc.batch_size % (dp * tc.accum_steps):
    raise UserError(f'train.batch_size={tc.batch_size} must be divisible by the data-parallel '
                    f'size {dp} times train.accum_steps={tc.accum_steps}')
  if tc.eval_batch_size % dp:
    raise UserError(f'train.eval_batch_size={tc.eval_batch_size} must be divisible by the '
                    f'data-parallel size {dp} (mesh data x fsdp)')
  if tc.nonfinite not in ('stop', 'skip'):
    raise UserError(f"train.nonfinite={tc.nonfinite!r}: use 'stop' or 'skip'")

  # ----- Model, objective and optimizer -----
  model, objective = task.model, task.objective
  if objective.check_model:  # e.g. train.loss_chunk needs a vocabulary head
    objective.check_model(model)
  weights = loss_weights(objective, config.objective.get('loss_weights'))
  tx = freeze(make_optimizer(config.optim), task.frozen)
  batch_sharding = partitioning.batch_sharding(mesh)
  drop = models.unused_inputs(task.model_config)  # e.g. language ids for BERT and UNILM
  keep = lambda b: {k: v for k, v in b.items() if k not in drop}
  example = keep(task.train_rows.batch(0, tc.batch_size // tc.accum_steps, seed=config.seed))

  def init(rng, extras):
    inputs, _ = objective.prepare(rng, jax.tree_util.tree_map(jnp.asarray, example), extras)
    params = model.init(rng, **inputs)['params']
    return dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
                rng=jax.random.PRNGKey(config.seed + 1))

  # ----- Shard: abstract shapes first, then init directly into the shards -----
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    boxed_extras = objective.make_extras() if objective.make_extras else {}
    extras_sharding = partitioning.logical_shardings(mesh, rules, boxed_extras)
    is_box = lambda x: isinstance(x, nn.meta.AxisMetadata)
    values = jax.tree_util.tree_map(lambda x: x.unbox(apply_constraint=False) if is_box(x) else x,
                                    boxed_extras, is_leaf=is_box)
    extras = jax.device_put(values, extras_sharding)
    rng = jax.random.PRNGKey(config.seed)
    boxed_state = jax.eval_shape(init, rng, extras)
    partitioning.check_logical_axes(rules, boxed_state)
    state_sharding = partitioning.logical_shardings(mesh, rules, boxed_state)
    unboxed_init = lambda r, e: nn.unbox(init(r, e))
    abstract_state = jax.eval_shape(unboxed_init, rng, extras)
    train_step, eval_step = make_steps(model, objective, tx, tc.accum_steps, weights,
                                       skip_nonfinite=tc.nonfinite == 'skip',
                                       frozen=task.frozen)
    train_step = jax.jit(train_step,
                         in_shardings=(state_sharding, extras_sharding, batch_sharding),
                         out_shardings=(state_sharding, partitioning.replicated(mesh)),
                         donate_argnums=0)
    init_fn = jax.jit(unboxed_init, out_shardings=state_sharding)
  meta = dict(task.meta, data=task.train_rows.fingerprint, model=task.model_config.to_dict(),
              task=task.name, frozen=sorted(task.frozen),  # the optimizer state depends on it
              **task.train_rows.meta)  # e.g. ERNIE 2.0's stage schedule
  put = lambda b: jax.make_array_from_process_local_data(batch_sharding, keep(b))
  return Setup(mesh, init_fn, abstract_state, state_sharding, extras, train_step,
               jax.jit(eval_step), put, meta, tc.eval_batch_size,
               task.init_map or models.init_map)


def restore_or_init(config, s: Setup, mngr):
  """The resume order of plm/checkpoint.py: workdir, then init_from, then scratch."""
  state, _ = checkpoint.restore_latest(mngr, s.abstract_state, s.state_sharding,
                                       lambda saved: meta_lib.check_meta(saved, s.meta))
  if state is not None:
    return state
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(config.seed), s.extras)
  if config.init_from:
    state['params'] = init_from(config, s, state['params'])
  return state


def init_from(config, s: Setup, params):
  """`params` with the saved params of config.init_from mapped onto them by the task's
  init_map (default plm.models.init_map: a pre-trained encoder under a new head)."""
  step, saved, _ = checkpoint.saved_params(
      config.init_from, lambda meta: meta_lib.check_init_from(config, meta, s.meta))
  shapes = lambda tree: jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), tree)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  restored, _ = checkpoint.restore_params(config.init_from, saved,
                                          jax.tree_util.tree_map(lambda _: device, saved))
  # Saved arrays on the host; the fresh ones stay in their shards (a part not taken is
  # returned as it is, so device_put leaves it in place).
  fresh = params
  mapped = s.init_map(jax.device_get(restored), fresh)
  if shapes(mapped) != shapes(fresh):
    raise UserError(f'the init_map of config.init_from={config.init_from!r} changed the '
                    'parameter shapes; it must return the fresh tree with saved values')
  taken = [k for k in fresh if mapped[k] is not fresh[k]]
  print(f'init_from: {", ".join(taken) or "nothing"} from step {step} of {config.init_from}; '
        f'{", ".join(k for k in fresh if k not in taken) or "nothing"} freshly initialized',
        flush=True)
  return jax.device_put(mapped, s.state_sharding['params'])


def train_and_evaluate(config, workdir: str, task: Task) -> dict:
  """Trains `task` in `workdir` (resuming if it holds a checkpoint); returns results.json."""
  workdir = workdir_lib.workdir_path(workdir)
  tc = config.train
  s = setup(config, task)
  eval_rng = jax.random.PRNGKey(config.seed + 2)  # the same masks at every evaluation
  validation = task.heldout('validation') if tc.eval_every else {}

  # ----- Restore -----
  mngr = checkpoint.manager(workdir, max_to_keep=tc.keep_checkpoints)
  state = restore_or_init(config, s, mngr)
  # After the restore's checks: a refused workdir keeps the config.json of its own run.
  workdir_lib.write_config(config, workdir)
  step = int(state['step'])
  if step:
    print(f'resumed from step {step} in {mngr.directory}', flush=True)
  # A streamed corpus (plm/data/prepared.py) is read by a grain iterator whose state each
  # checkpoint holds; in-memory rows are a pure function of (seed, step): no iterator.
  stream = task.train_rows.iterator(tc.batch_size, seed=config.seed,
                                    process_index=jax.process_index(),
                                    process_count=jax.process_count())
  if stream is not None and step:
    checkpoint.restore_data(mngr, step, stream)

  # ----- Loop -----
  stop = {'signal': None}
  previous = signal.signal(signal.SIGTERM, lambda sig, frame: stop.update(signal=sig))
  writer = SummaryWriter(os.path.join(workdir, 'tb')) if jax.process_index() == 0 else None
  bar = progress.Progress(step, tc.steps, writer, task.objective.heads,
                          stop_on_nonfinite=tc.nonfinite == 'stop',
                          learning_rate=learning_rate(config.optim))
  seen_compiles = 0  # a compile-count guard: the step must compile once
  try:
    with jax.set_mesh(s.mesh):
      while step < tc.steps and stop['signal'] is None:
        local = next(stream) if stream is not None else task.train_rows.batch(
            step, tc.batch_size, seed=config.seed, process_index=jax.process_index(),
            process_count=jax.process_count())
        state, metrics = s.train_step(state, s.extras, s.put(local))
        step += 1
        compiles = s.train_step._cache_size()  # pylint: disable=protected-access
        if compiles > max(seen_compiles, 1):
          logging.warning('the train step recompiled at step %d: batch shapes or dtypes '
                          'changed; every step should reuse one executable', step)
        seen_compiles = compiles
        bar.add(step, metrics)
        if step % tc.log_every == 0 or step == tc.steps:
          bar.flush(step)
        if tc.eval_every and step % tc.eval_every == 0 and step < tc.steps:
          bar.log_eval(step, 'validation', evaluate(s, state['params'], validation, eval_rng))
        for _, every, evaluator, log in task.evaluators:
          if every and step % every == 0 and step < tc.steps:
            log(evaluator(state['params'], 'validation'), step, writer)
        if step % tc.checkpoint_every == 0:
          checkpoint.save(mngr, step, state, dict(s.meta, data_step=step), stream)
      bar.flush(step)
      if mngr.latest_step() != step:
        checkpoint.save(mngr, step, state, dict(s.meta, data_step=step), stream)
      checkpoint.wait(mngr, step)
  finally:
    signal.signal(signal.SIGTERM, previous)
  if stop['signal'] is not None:
    print(f'stopped by signal {stop["signal"]} at step {step}; checkpoint saved, rerun the '
          'same command to continue', flush=True)
    return {}

  # ----- Final held-out evaluation -----
  results = test_results(config, s, task, state['params'], step, writer, bar)
  if writer:
    writer.close()
  workdir_lib.write_results(results, workdir)
  return results


def test_results(config, s: Setup, task: Task, params, step: int, writer=None, bar=None) -> dict:
  """The test-split table, the task's evaluators and report, printed; results.json's content."""
  with jax.set_mesh(s.mesh):
    table = evaluate(s, params, task.heldout('test'), jax.random.PRNGKey(config.seed + 2))
  if bar:
    bar.log_eval(step, 'test', table)
  print(f'\nHeld-out results (test split, step {step}):\n{progress.format_table(table)}',
        flush=True)
  results = dict(job=config.job, task=task.name, seed=config.seed, step=step,
                 init_from=config.init_from, train_rows=len(task.train_rows),
                 train_info=dict(task.train_rows.info), test=table)
  with jax.set_mesh(s.mesh):
    for name, _, evaluator, log in task.evaluators:
      results[name] = evaluator(params, 'test')
      log(results[name], step, writer)
    if task.report:
      results.update(task.report(params, table))
  return results


def evaluate_checkpoint(config, workdir: str, task: Task) -> dict:
  """The test-split results of the newest checkpoint in `workdir`, written to
  results_evaluate.json (the training run's results.json and config.json stay as they are)."""
  workdir = workdir_lib.workdir_path(workdir)
  s = setup(config, task)
  state, _ = checkpoint.restore_latest(checkpoint.manager(workdir), s.abstract_state,
                                       s.state_sharding,
                                       lambda saved: meta_lib.check_meta(saved, s.meta))
  if state is None:
    raise MissingFileError(f'no checkpoint in {workdir}/checkpoints; train first '
                           '(config.job=train) or point --workdir at a trained run')
  results = test_results(config, s, task, state['params'], int(state['step']))
  workdir_lib.write_results(results, workdir, 'results_evaluate.json')  # results.json is training's
  return results
