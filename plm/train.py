"""The one training loop: mesh, input, model + optimizer, sharded init, step,
restore, evaluation, loop. Read top to bottom."""
import functools
import os
import signal
import time

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tensorboardX import SummaryWriter

from plm import checkpoint, models, objectives, partitioning
from plm.data import pipeline
from plm.data import tokenizer as tokenizer_lib
from plm.objectives.losses import weighted_cross_entropy


class NonFiniteLossError(FloatingPointError):
  pass


def make_optimizer(c) -> optax.GradientTransformation:
  """AdamW with linear warmup, linear or cosine decay and global-norm clipping."""
  decay = {'linear': optax.linear_schedule, 'cosine': optax.cosine_decay_schedule}
  if c.schedule not in decay:
    raise ValueError(f'optim.schedule={c.schedule!r}: use one of {sorted(decay)}')
  after = (optax.linear_schedule(c.lr, 0.0, max(c.total_steps - c.warmup_steps, 1))
           if c.schedule == 'linear' else
           optax.cosine_decay_schedule(c.lr, max(c.total_steps - c.warmup_steps, 1)))
  lr = optax.join_schedules([optax.linear_schedule(0.0, c.lr, c.warmup_steps), after],
                            [c.warmup_steps])
  # No weight decay on biases and LayerNorm parameters (BERT's recipe).
  decay_mask = lambda p: jax.tree_util.tree_map(lambda x: x.ndim > 1, p)
  return optax.chain(optax.clip_by_global_norm(c.grad_clip),
                     optax.adamw(lr, c.b1, c.b2, c.eps, c.weight_decay, mask=decay_mask))


def load_tokenizer(config, workdir: str):
  """The configured vocabulary, trained on the training split if it is missing."""
  path = config.data.vocab_path or os.path.join(workdir, 'vocab', 'spm.model')
  def texts():
    for docs in pipeline.load_texts(config.data, 'train').values():
      for doc in docs:
        yield from doc
  return tokenizer_lib.load_or_train(os.path.expanduser(path), texts(), config.data.vocab_size)


def make_steps(model, objective, tx, accum_steps: int, top_token: int):
  """Returns the pure (unjitted) train and eval step functions."""

  def loss_sums(params, rng, batch, deterministic):
    k_obj, k_drop = jax.random.split(rng)
    inputs, targets, weights = objective(k_obj, batch)
    logits = model.apply({'params': params}, **inputs, deterministic=deterministic,
                         rngs={'dropout': k_drop})
    sums = weighted_cross_entropy(logits, targets, weights)
    sums['unigram_correct'] = jnp.sum((targets == top_token) * weights)
    sums['tokens'] = jnp.sum(batch['segment_ids'] > 0).astype(jnp.float32)
    return sums['loss'], sums

  def train_step(state, batch):
    rng = jax.random.fold_in(state['rng'], state['step'])
    # Micro-batches [A, B/A, ...]; gradients of summed losses are added, then
    # divided by the total weight: the exact token mean of the whole batch.
    micro = jax.tree_util.tree_map(
        lambda x: x.reshape((accum_steps, -1) + x.shape[1:]), batch)
    grad_fn = jax.grad(loss_sums, has_aux=True)

    def accumulate(carry, xs):
      i, mb = xs
      g, sums = grad_fn(state['params'], jax.random.fold_in(rng, i), mb, False)
      return jax.tree_util.tree_map(jnp.add, carry, (g, sums)), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like, state['params'])
    zero_sums = jax.eval_shape(lambda: loss_sums(state['params'], rng, batch, True)[1])
    zero_sums = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), zero_sums)
    (grads, sums), _ = jax.lax.scan(accumulate, (zeros, zero_sums),
                                    (jnp.arange(accum_steps), micro))
    denom = jnp.maximum(sums['weight'], 1.0)
    grads = jax.tree_util.tree_map(lambda g: g / denom, grads)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    new_state = dict(params=optax.apply_updates(state['params'], updates),
                     opt_state=opt_state, step=state['step'] + 1, rng=state['rng'])
    metrics = dict(loss=sums['loss'] / denom, accuracy=sums['correct'] / denom,
                   tokens=sums['tokens'], grad_norm=optax.global_norm(grads))
    return new_state, metrics

  def eval_step(params, batch, rng):
    return loss_sums(params, rng, batch, True)[1]

  return train_step, eval_step


def evaluate(eval_step, params, datasets, batch_size, rng, put):
  """Held-out metrics per language: loss, perplexity, accuracy, unigram baseline."""
  table = {}
  for lang, ds in datasets.items():
    totals = None
    for batch in ds.iterate_once(batch_size):
      sums = jax.device_get(eval_step(params, put(batch), rng))
      totals = sums if totals is None else {k: totals[k] + sums[k] for k in sums}
    w = max(float(totals['weight']), 1.0)
    table[lang] = dict(loss=float(totals['loss']) / w, ppl=float(np.exp(totals['loss'] / w)),
                       accuracy=float(totals['correct']) / w,
                       unigram_accuracy=float(totals['unigram_correct']) / w,
                       predictions=int(totals['weight']))
  return table


def format_table(table: dict) -> str:
  rows = ['| language | loss | perplexity | accuracy | unigram baseline | predictions |',
          '|---|---|---|---|---|---|']
  for lang, m in table.items():
    rows.append(f"| {lang} | {m['loss']:.3f} | {m['ppl']:.1f} | {m['accuracy']:.3f} | "
                f"{m['unigram_accuracy']:.3f} | {m['predictions']} |")
  return '\n'.join(rows)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint); returns the test table."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  tc = config.train

  # ----- Mesh -----
  mesh = partitioning.make_mesh(dict(config.mesh))
  rules = partitioning.check_rules(config.rules)
  dp = partitioning.data_parallel_size(mesh)
  if tc.batch_size % (dp * tc.accum_steps):
    raise ValueError(f'train.batch_size={tc.batch_size} must be divisible by the data-parallel '
                     f'size {dp} times train.accum_steps={tc.accum_steps}')

  # ----- Input -----
  tokenizer = load_tokenizer(config, workdir)
  train_ds = pipeline.make_dataset(config.data, tokenizer, 'train')
  eval_sets = {lang: pipeline.make_dataset(config.data, tokenizer, split, languages=(lang,))
               for split in ('validation',) for lang in config.data.languages}
  counts = train_ds.token_counts(tokenizer.vocab_size)
  special = [tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.mask_id]
  top_token = int(np.argmax(np.where(np.isin(np.arange(len(counts)), special), -1, counts)))
  logging.info('train rows %d, data fingerprint %s, vocab %s (%d pieces)', len(train_ds),
               train_ds.fingerprint, tokenizer.fingerprint, tokenizer.vocab_size)

  # ----- Model and optimizer -----
  model = models.build(config.model, tokenizer.vocab_size)
  objective = objectives.build(config.objective, tokenizer, counts)
  tx = make_optimizer(config.optim)
  batch_sharding = partitioning.batch_sharding(mesh)
  put = lambda b: jax.make_array_from_process_local_data(batch_sharding, b)

  # ----- Sharded init: abstract shapes first, then init directly into shards -----
  example = train_ds.batch(0, tc.batch_size // tc.accum_steps, seed=config.seed,
                           process_index=jax.process_index(),
                           process_count=jax.process_count())

  def init(rng):
    inputs, _, _ = objective(rng, jax.tree_util.tree_map(jnp.asarray, example))
    params = model.init(rng, **inputs)['params']
    return dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
                rng=jax.random.PRNGKey(config.seed + 1))

  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    boxed = jax.eval_shape(init, jax.random.PRNGKey(config.seed))
    state_sharding = partitioning.logical_shardings(mesh, rules, boxed)
    abstract_state = jax.eval_shape(lambda r: nn.unbox(init(r)), jax.random.PRNGKey(config.seed))
    train_step, eval_step = make_steps(model, objective, tx, tc.accum_steps, top_token)
    train_step = jax.jit(train_step, in_shardings=(state_sharding, batch_sharding),
                         out_shardings=(state_sharding, partitioning.replicated(mesh)),
                         donate_argnums=0)
    eval_step = jax.jit(eval_step)

    # ----- Restore (resume order in plm/checkpoint.py) -----
    mngr = checkpoint.manager(workdir, max_to_keep=tc.keep_checkpoints)
    meta = dict(vocab=tokenizer.fingerprint, data=train_ds.fingerprint,
                vocab_size=tokenizer.vocab_size, model=config.model.to_dict())
    state, saved_meta = checkpoint.restore_latest(mngr, abstract_state, state_sharding)
    if state is not None:
      check_meta(saved_meta, meta)
    else:
      state = jax.jit(lambda r: nn.unbox(init(r)), out_shardings=state_sharding)(
          jax.random.PRNGKey(config.seed))
      if config.init_from:
        state['params'], _ = checkpoint.restore_params(
            config.init_from, abstract_state['params'], state_sharding['params'])

    # ----- Loop -----
    stop = {'signal': None}
    previous = signal.signal(signal.SIGTERM, lambda s, f: stop.update(signal=s))
    writer = SummaryWriter(os.path.join(workdir, 'tb')) if jax.process_index() == 0 else None
    step = int(state['step'])
    start_step, t0, pending = step, time.time(), []
    eval_rng = jax.random.PRNGKey(config.seed + 2)  # the same masks at every evaluation
    try:
      while step < tc.steps and stop['signal'] is None:
        local = train_ds.batch(step, tc.batch_size, seed=config.seed,
                               process_index=jax.process_index(),
                               process_count=jax.process_count())
        state, metrics = train_step(state, put(local))
        step += 1
        pending.append((step, metrics))
        if step % tc.log_every == 0 or step == tc.steps:
          log_metrics(pending, writer, step, start_step, t0, tc.steps)
          pending = []
        if step % tc.eval_every == 0 and step < tc.steps:
          table = evaluate(eval_step, state['params'], eval_sets, tc.eval_batch_size, eval_rng, put)
          for lang, m in table.items():
            logging.info('step %d validation %s: loss %.3f acc %.3f', step, lang, m['loss'],
                         m['accuracy'])
            if writer:
              for k, v in m.items():
                writer.add_scalar(f'validation_{lang}/{k}', v, step)
        if step % tc.checkpoint_every == 0:
          checkpoint.save(mngr, step, state, dict(meta, data_step=step))
      log_metrics(pending, writer, step, start_step, t0, tc.steps)
      if step > start_step and step not in mngr.all_steps():
        checkpoint.save(mngr, step, state, dict(meta, data_step=step))
      mngr.wait_until_finished()
    finally:
      signal.signal(signal.SIGTERM, previous)
    if stop['signal'] is not None:
      logging.warning('stopped by signal %d at step %d; checkpoint saved, rerun the same '
                      'command to continue', stop['signal'], step)
      return {}

    # ----- Final held-out evaluation -----
    test_sets = {lang: pipeline.make_dataset(config.data, tokenizer, 'test', languages=(lang,))
                 for lang in config.data.languages}
    table = evaluate(eval_step, state['params'], test_sets, tc.eval_batch_size, eval_rng, put)
  text = format_table(table)
  logging.info('held-out (test split) after %d steps:\n%s', step, text)
  print(f'\nHeld-out results (test split, step {step}):\n{text}', flush=True)
  if writer:
    writer.close()
  return table


def check_meta(saved: dict, current: dict) -> None:
  """A checkpoint only resumes with the vocabulary and model it was trained with."""
  if saved.get('vocab') != current['vocab']:
    raise ValueError(f"the checkpoint was trained with vocabulary {saved.get('vocab')} but "
                     f"data.vocab_path gives {current['vocab']}; point data.vocab_path at the "
                     'original vocabulary or start in a new --workdir')
  if saved.get('model') != current['model']:
    raise ValueError('the checkpoint holds another model configuration '
                     f"({saved.get('model')}); use the config it was trained with or a new "
                     '--workdir')
  if saved.get('data') != current['data']:
    logging.warning('the training data changed since the checkpoint (fingerprint %s -> %s); '
                    'continuing at the saved step on the new data', saved.get('data'),
                    current['data'])


def log_metrics(pending, writer, step, start_step, t0, total_steps):
  """Fetches queued step metrics, checks them, logs a progress line."""
  if not pending:
    return
  fetched = jax.device_get([m for _, m in pending])
  for (s, _), m in zip(pending, fetched):
    if not np.isfinite(m['loss']):
      raise NonFiniteLossError(
          f'non-finite loss {m["loss"]} at step {s} (batch {s - 1} of the data order); '
          'lower optim.lr, raise optim.warmup_steps or check the data. The last checkpoint '
          'before it is intact: rerun to resume from there')
    if writer:
      for k, v in m.items():
        writer.add_scalar(f'train/{k}', float(v), s)
  elapsed = time.time() - t0
  tokens = sum(float(m['tokens']) for m in fetched)
  rate = (step - start_step) / max(elapsed, 1e-9)
  eta = (total_steps - step) / max(rate, 1e-9)
  last = fetched[-1]
  msg = (f'step {step}/{total_steps} loss {last["loss"]:.3f} acc {last["accuracy"]:.3f} '
         f'tokens/s {tokens / max(time.time() - log_metrics.last_time, 1e-9):,.0f} '
         f'ETA {eta / 60:.1f} min')
  log_metrics.last_time = time.time()
  logging.info(msg)
  print(msg, flush=True)


log_metrics.last_time = time.time()
