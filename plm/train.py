"""The one training loop: mesh, input, model + optimizer, sharded init, step,
restore, evaluation, loop. Read top to bottom."""
import functools
import os
import signal
import time
from typing import Any, Callable, NamedTuple

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tensorboardX import SummaryWriter

from plm import checkpoint, models, objectives, partitioning
from plm.data import mixing, pipeline, sampling
from plm.data import tokenizer as tokenizer_lib
from plm.objectives.losses import chunked_cross_entropy, weighted_cross_entropy


class NonFiniteLossError(FloatingPointError):
  pass


def make_optimizer(c) -> optax.GradientTransformation:
  """AdamW with linear warmup, linear or cosine decay and global-norm clipping."""
  horizon = max(c.total_steps - c.warmup_steps, 1)
  decays = {'linear': lambda: optax.linear_schedule(c.lr, 0.0, horizon),
            'cosine': lambda: optax.cosine_decay_schedule(c.lr, horizon)}
  if c.schedule not in decays:
    raise ValueError(f'optim.schedule={c.schedule!r}: use one of {sorted(decays)}')
  lr = optax.join_schedules([optax.linear_schedule(0.0, c.lr, c.warmup_steps),
                             decays[c.schedule]()], [c.warmup_steps])
  # No weight decay on biases and LayerNorm parameters (BERT's recipe).
  decay_mask = lambda p: jax.tree_util.tree_map(lambda x: x.ndim > 1, p)
  return optax.chain(optax.clip_by_global_norm(c.grad_clip),
                     optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay,
                                 mask=decay_mask))


def unigram_logp(counts: np.ndarray, tokenizer) -> np.ndarray:
  """Add-one smoothed log-probabilities of the training tokens; specials excluded."""
  counts = counts.astype(np.float64) + 1.0
  counts[[tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.mask_id]] = 1e-9
  return np.log(counts / counts.sum()).astype(np.float32)


def vocab_path(config, workdir: str) -> str:
  """data.vocab_path, or the run's own vocabulary in {workdir}/vocab."""
  return os.path.expanduser(config.data.vocab_path or os.path.join(workdir, 'vocab', 'spm.model'))


def load_tokenizer(config, workdir: str):
  """The configured vocabulary, trained on the training split if it is missing."""
  path = vocab_path(config, workdir)
  def texts():  # XLM's joint BPE: sentences sampled q ∝ p^vocab_alpha per language
    yield from sampling.vocab_sentences(pipeline.load_texts(config.data, 'train'),
                                        config.data.vocab_alpha)
  tokenizer = tokenizer_lib.load_or_train(path, texts(), config.data.vocab_size)
  tokenizer_lib.check_fingerprint(tokenizer, config.data.vocab_fingerprint)
  return tokenizer


def make_steps(model, objective, tx, accum_steps: int, unigram_logp: np.ndarray,
               skip_nonfinite: bool = False, loss_chunk: int = 0):
  """Returns the pure (unjitted) train and eval step functions.

  The objective runs once on the whole batch, so accumulating A micro-batches
  is the same update as one A-times larger batch (dropout aside). loss_chunk > 0
  computes the logits and loss that many positions at a time (train.loss_chunk).
  """
  logp = jnp.asarray(unigram_logp)
  if loss_chunk and not hasattr(model, 'hidden'):
    raise ValueError(f'train.loss_chunk={loss_chunk} needs a language model (hidden + logits); '
                     f'{type(model).__name__} has no vocabulary head: set train.loss_chunk=0')

  def loss_sums(params, example, k_drop, deterministic):
    inputs, targets, weights = example
    variables, rngs = {'params': params}, {'dropout': k_drop}
    if loss_chunk:
      hidden = model.apply(variables, **inputs, deterministic=deterministic, rngs=rngs,
                           method='hidden')
      sums = chunked_cross_entropy(lambda h: model.apply(variables, h, method='logits'),
                                   hidden, targets, weights, loss_chunk)
    else:
      logits = model.apply(variables, **inputs, deterministic=deterministic, rngs=rngs)
      sums = weighted_cross_entropy(logits, targets, weights)
    # The baseline a model must beat: the training unigram distribution.
    sums['unigram_correct'] = jnp.sum((targets == jnp.argmax(logp)) * weights)
    sums['unigram_loss'] = -jnp.sum(logp[targets] * weights)
    return sums['loss'], sums

  def train_step(state, batch):
    k_obj, k_drop = jax.random.split(jax.random.fold_in(state['rng'], state['step']))
    example = objective(k_obj, batch)
    # Micro-batches [A, B/A, ...]; gradients of summed losses are added, then
    # divided by the total weight: the exact token mean of the whole batch.
    micro = jax.tree_util.tree_map(
        lambda x: x.reshape((accum_steps, -1) + x.shape[1:]), example)
    grad_fn = jax.grad(functools.partial(loss_sums, deterministic=False), has_aux=True)

    def accumulate(carry, xs):
      i, mb = xs
      g, sums = grad_fn(state['params'], mb, jax.random.fold_in(k_drop, i))
      return jax.tree_util.tree_map(jnp.add, carry, (g, sums)), None

    first = jax.tree_util.tree_map(lambda x: x[0], micro)
    if accum_steps == 1:  # no loop: XLA:CPU copies every parameter into a while body
      grads, sums = grad_fn(state['params'], first, jax.random.fold_in(k_drop, 0))
    else:
      zero = lambda tree: jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), tree)
      carry = zero(jax.eval_shape(grad_fn, state['params'], first, k_drop))
      (grads, sums), _ = jax.lax.scan(accumulate, carry, (jnp.arange(accum_steps), micro))
    denom = jnp.maximum(sums['weight'], 1.0)
    grads = jax.tree_util.tree_map(lambda g: g / denom, grads)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    new_state = dict(params=optax.apply_updates(state['params'], updates),
                     opt_state=opt_state, step=state['step'] + 1, rng=state['rng'])
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(sums['loss']) & jnp.isfinite(grad_norm)
    if skip_nonfinite:  # keep the old params and optimizer state; count the skip
      keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)
      new_state.update(params=keep(new_state['params'], state['params']),
                       opt_state=keep(opt_state, state['opt_state']))
    metrics = dict(loss=sums['loss'] / denom, accuracy=sums['correct'] / denom,
                   tokens=jnp.sum(batch['segment_ids'] > 0).astype(jnp.float32),
                   grad_norm=grad_norm, skipped=1.0 - finite.astype(jnp.float32))
    return new_state, metrics

  def eval_step(params, batch, rng):
    return loss_sums(params, objective(rng, batch), rng, True)[1]

  return train_step, eval_step


def evaluate(eval_step, params, datasets, batch_size, rng, put):
  """Held-out metrics per language: loss, perplexity, accuracy, unigram baseline."""
  table = {}
  for lang, ds in datasets.items():
    totals = None
    for batch in ds.iterate_once(batch_size, process_index=jax.process_index(),
                                 process_count=jax.process_count()):
      sums = jax.device_get(eval_step(params, put(batch), rng))
      totals = sums if totals is None else {k: totals[k] + sums[k] for k in sums}
    w = max(float(totals['weight']), 1.0)
    table[lang] = dict(loss=float(totals['loss']) / w, ppl=float(np.exp(totals['loss'] / w)),
                       accuracy=float(totals['correct']) / w,
                       unigram_accuracy=float(totals['unigram_correct']) / w,
                       unigram_loss=float(totals['unigram_loss']) / w,
                       predictions=int(totals['weight']))
  return table


def format_table(table: dict) -> str:
  rows = ['| language | loss | perplexity | accuracy | unigram loss | unigram accuracy | '
          'predictions |', '|---|---|---|---|---|---|---|']
  for lang, m in table.items():
    rows.append(f"| {lang} | {m['loss']:.3f} | {m['ppl']:.1f} | {m['accuracy']:.3f} | "
                f"{m['unigram_loss']:.3f} | {m['unigram_accuracy']:.3f} | {m['predictions']} |")
  return '\n'.join(rows)


class Setup(NamedTuple):
  """Everything a run builds before its first step."""
  mesh: Mesh
  tokenizer: Any
  train_ds: mixing.MixedDataset
  init: Callable  # rng -> state, jitted, writes straight into shards
  abstract_state: Any
  state_sharding: Any
  train_step: Callable  # (state, global batch) -> (state, metrics), jitted, donates state
  eval_step: Callable  # (params, batch, rng) -> metric sums, jitted
  put: Callable  # process-local numpy batch -> global sharded array
  meta: dict  # what a checkpoint must match to resume


def setup(config, workdir: str, devices=None) -> Setup:
  """Mesh, input, model, optimizer and the sharded, jitted init and steps."""
  tc = config.train
  # ----- Mesh -----
  mesh = partitioning.make_mesh(dict(config.mesh), devices)
  rules = partitioning.check_rules(config.rules)
  dp = partitioning.data_parallel_size(mesh)
  if tc.batch_size % (dp * tc.accum_steps):
    raise ValueError(f'train.batch_size={tc.batch_size} must be divisible by the data-parallel '
                     f'size {dp} times train.accum_steps={tc.accum_steps}')
  if tc.eval_batch_size % dp:
    raise ValueError(f'train.eval_batch_size={tc.eval_batch_size} must be divisible by the '
                     f'data-parallel size {dp} (mesh data x fsdp)')
  if tc.nonfinite not in ('stop', 'skip'):
    raise ValueError(f"train.nonfinite={tc.nonfinite!r}: use 'stop' or 'skip'")
  if config.data.seq_len > config.model.max_len:
    raise ValueError(f'data.seq_len={config.data.seq_len} exceeds model.max_len='
                     f'{config.model.max_len}; raise model.max_len or lower data.seq_len')
  if config.model.num_languages not in (0, len(config.data.languages)):
    raise ValueError(f'model.num_languages={config.model.num_languages} but data.languages has '
                     f'{len(config.data.languages)}; make them equal (or 0 for no language '
                     'embeddings)')

  # ----- Input -----
  tokenizer = load_tokenizer(config, workdir)
  train_ds = mixing.make_train_dataset(config.data, tokenizer)  # MLM (+ TLM) rows, sampled
  counts = train_ds.token_counts(tokenizer.vocab_size)
  print(f'data: {len(train_ds)} training rows of {config.data.seq_len} tokens, fingerprint '
        f'{train_ds.fingerprint}, order '
        f'{train_ds.order_fingerprint(tc.batch_size, seed=config.seed)}; vocabulary '
        f'{tokenizer.fingerprint} ({tokenizer.vocab_size} pieces); streams: {train_ds.summary}',
        flush=True)

  # ----- Model and optimizer -----
  model = models.build(config.model, tokenizer.vocab_size)
  objective = objectives.build(config.objective, tokenizer, counts)
  tx = make_optimizer(config.optim)
  batch_sharding = partitioning.batch_sharding(mesh)
  # A model without language embeddings gets no language ids (BERT, UNILM).
  keep = lambda b: {k: v for k, v in b.items() if k != 'langs' or config.model.num_languages}
  example = keep(train_ds.batch(0, tc.batch_size // tc.accum_steps, seed=config.seed))

  def init(rng):
    inputs, _, _ = objective(rng, jax.tree_util.tree_map(jnp.asarray, example))
    params = model.init(rng, **inputs)['params']
    return dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
                rng=jax.random.PRNGKey(config.seed + 1))

  # ----- Shard: abstract shapes first, then init directly into the shards -----
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    rng = jax.random.PRNGKey(config.seed)
    boxed_state = jax.eval_shape(init, rng)
    partitioning.check_logical_axes(rules, boxed_state)
    state_sharding = partitioning.logical_shardings(mesh, rules, boxed_state)
    unboxed_init = lambda r: nn.unbox(init(r))
    abstract_state = jax.eval_shape(unboxed_init, rng)
    train_step, eval_step = make_steps(model, objective, tx, tc.accum_steps,
                                       unigram_logp(counts, tokenizer),
                                       skip_nonfinite=tc.nonfinite == 'skip',
                                       loss_chunk=tc.loss_chunk)
    train_step = jax.jit(train_step, in_shardings=(state_sharding, batch_sharding),
                         out_shardings=(state_sharding, partitioning.replicated(mesh)),
                         donate_argnums=0)
    init_fn = jax.jit(unboxed_init, out_shardings=state_sharding)
  meta = dict(vocab=tokenizer.fingerprint, data=train_ds.fingerprint,
              vocab_size=tokenizer.vocab_size, model=config.model.to_dict())
  put = lambda b: jax.make_array_from_process_local_data(batch_sharding, keep(b))
  return Setup(mesh, tokenizer, train_ds, init_fn, abstract_state, state_sharding, train_step,
               jax.jit(eval_step), put, meta)


def restore_or_init(config, s: Setup, mngr):
  """The resume order of plm/checkpoint.py: workdir, then init_from, then scratch."""
  state, _ = checkpoint.restore_latest(mngr, s.abstract_state, s.state_sharding,
                                       lambda saved: check_meta(saved, s.meta))
  if state is not None:
    return state
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(config.seed))
  if config.init_from:
    state['params'], _ = checkpoint.restore_params(
        config.init_from, s.abstract_state['params'], s.state_sharding['params'],
        check=lambda saved: check_init_from(config, saved, s.meta))
  return state


def check_init_from(config, saved: dict, current: dict) -> None:
  """config.init_from must hold a run of this run's vocabulary."""
  if saved.get('vocab') != current['vocab']:
    raise ValueError(f'config.init_from={config.init_from!r} was trained with vocabulary '
                     f"{saved.get('vocab')}, this run uses {current['vocab']}; set "
                     'data.vocab_path to the vocabulary of that run (its vocab/spm.model)')


def heldout_sets(config, tokenizer, split):
  """MLM rows per language, and TLM rows per direction ('en-es') when the run trains TLM."""
  sets = {lang: pipeline.make_dataset(config.data, tokenizer, split, languages=(lang,))
          for lang in config.data.languages}
  return {**sets, **mixing.heldout_tlm_sets(config.data, tokenizer, split)}


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint); returns the test table."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  tc = config.train
  s = setup(config, workdir)
  eval_sets = heldout_sets(config, s.tokenizer, 'validation')
  eval_rng = jax.random.PRNGKey(config.seed + 2)  # the same masks at every evaluation
  retrieval = None
  if tc.retrieval_every:  # Bible verse retrieval (plm/retrieve.py); imported here: it imports us
    from plm import retrieve  # pylint: disable=g-import-not-at-top
    retrieval = retrieve.Evaluator(config, s.tokenizer, models.build(config.model,
                                                                     s.tokenizer.vocab_size))

  # ----- Restore -----
  mngr = checkpoint.manager(workdir, max_to_keep=tc.keep_checkpoints)
  state = restore_or_init(config, s, mngr)
  step = int(state['step'])
  if step:
    print(f'resumed from step {step} in {mngr.directory}', flush=True)

  # ----- Loop -----
  stop = {'signal': None}
  previous = signal.signal(signal.SIGTERM, lambda sig, frame: stop.update(signal=sig))
  writer = SummaryWriter(os.path.join(workdir, 'tb')) if jax.process_index() == 0 else None
  progress = Progress(step, tc.steps, writer, stop_on_nonfinite=tc.nonfinite == 'stop')
  seen_compiles = 0  # a compile-count guard: the step must compile once
  try:
    with jax.set_mesh(s.mesh):
      while step < tc.steps and stop['signal'] is None:
        local = s.train_ds.batch(step, tc.batch_size, seed=config.seed,
                                 process_index=jax.process_index(),
                                 process_count=jax.process_count())
        state, metrics = s.train_step(state, s.put(local))
        step += 1
        compiles = s.train_step._cache_size()  # pylint: disable=protected-access
        if compiles > max(seen_compiles, 1):
          logging.warning('the train step recompiled at step %d: batch shapes or dtypes '
                          'changed; every step should reuse one executable', step)
        seen_compiles = compiles
        progress.add(step, metrics)
        if step % tc.log_every == 0 or step == tc.steps:
          progress.flush(step)
        if step % tc.eval_every == 0 and step < tc.steps:
          table = evaluate(s.eval_step, state['params'], eval_sets, tc.eval_batch_size,
                           eval_rng, s.put)
          progress.log_eval(step, 'validation', table)
        if retrieval and step % tc.retrieval_every == 0 and step < tc.steps:
          retrieve.log(retrieval(state['params'], 'validation'), step, writer)
        if step % tc.checkpoint_every == 0:
          checkpoint.save(mngr, step, state, dict(s.meta, data_step=step))
      progress.flush(step)
      if mngr.latest_step() != step:
        checkpoint.save(mngr, step, state, dict(s.meta, data_step=step))
      checkpoint.wait(mngr, step)
  finally:
    signal.signal(signal.SIGTERM, previous)
  if stop['signal'] is not None:
    print(f'stopped by signal {stop["signal"]} at step {step}; checkpoint saved, rerun the '
          'same command to continue', flush=True)
    return {}

  # ----- Final held-out evaluation -----
  with jax.set_mesh(s.mesh):
    table = evaluate(s.eval_step, state['params'], heldout_sets(config, s.tokenizer, 'test'),
                     tc.eval_batch_size, eval_rng, s.put)
  progress.log_eval(step, 'test', table)
  print(f'\nHeld-out results (test split, step {step}):\n{format_table(table)}', flush=True)
  if retrieval:
    with jax.set_mesh(s.mesh):
      table['retrieval'] = retrieval(state['params'], 'test')
    retrieve.log(table['retrieval'], step, writer)
  if writer:
    writer.close()
  return table


def evaluate_checkpoint(config, workdir: str) -> dict:
  """The `evaluate` job: the test-split table of the newest checkpoint in `workdir`."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  s = setup(config, workdir)
  state, _ = checkpoint.restore_latest(checkpoint.manager(workdir), s.abstract_state,
                                       s.state_sharding, lambda saved: check_meta(saved, s.meta))
  if state is None:
    raise FileNotFoundError(f'no checkpoint in {workdir}/checkpoints; train first '
                            '(config.job=train) or point --workdir at a trained run')
  with jax.set_mesh(s.mesh):
    table = evaluate(s.eval_step, state['params'], heldout_sets(config, s.tokenizer, 'test'),
                     config.train.eval_batch_size, jax.random.PRNGKey(config.seed + 2), s.put)
  print(f'Held-out results (test split, step {int(state["step"])}):\n{format_table(table)}',
        flush=True)
  return table


def check_meta(saved: dict, current: dict) -> None:
  """A checkpoint only serves the vocabulary and model it was trained with.

  `current` without 'data' (a job that reads no corpus) skips the data check.
  """
  if saved.get('vocab') != current['vocab']:
    raise ValueError(f"the checkpoint was trained with vocabulary {saved.get('vocab')} but "
                     f"this run's vocabulary is {current['vocab']}; set data.vocab_path to the "
                     'original vocabulary or start in a new --workdir')
  # dtype / remat / attention change how a model computes, not its parameters.
  model = lambda m: {k: v for k, v in (m or {}).items() if k not in models.COMPUTE_FIELDS}
  if model(saved.get('model')) != model(current['model']):
    raise ValueError(f"the checkpoint holds another model ({saved.get('model')}); use the "
                     'config it was trained with or start in a new --workdir')
  if 'data' in current and saved.get('data') != current['data']:
    logging.warning('the training data changed since the checkpoint (fingerprint %s -> %s); '
                    'continuing at the saved step on the new data', saved.get('data'),
                    current['data'])


class Progress:
  """Queues step metrics on device, fetches them in batches, checks, logs."""

  def __init__(self, step: int, total_steps: int, writer, stop_on_nonfinite: bool = True):
    self.total, self.writer, self.pending = total_steps, writer, []
    self.stop_on_nonfinite, self.skipped = stop_on_nonfinite, 0
    self.start_step, self.t0 = step, time.time()
    self.last_time = self.t0

  def add(self, step: int, metrics) -> None:
    """Queues a step's metrics; waits for the step before it.

    Async dispatch would otherwise let the host run up to `log_every` steps
    ahead of the device, and a SIGTERM would only be seen after all of them.
    """
    if self.pending:
      jax.block_until_ready(self.pending[-1][1]['loss'])
    self.pending.append((step, metrics))

  def flush(self, step: int) -> None:
    """Fetches queued metrics; a non-finite loss stops the run, naming its step."""
    if not self.pending:
      return
    fetched = jax.device_get([m for _, m in self.pending])
    for (s, _), m in zip(self.pending, fetched):
      self.skipped += int(m['skipped'])
      if self.stop_on_nonfinite and not np.isfinite(m['loss']):
        raise NonFiniteLossError(
            f'non-finite loss {m["loss"]} at step {s} (batch {s - 1} of the data order); '
            'lower optim.lr, raise optim.warmup_steps or check the data (or set '
            "train.nonfinite='skip'). Checkpoints before it are intact: rerun to resume")
      if self.writer:
        for k, v in m.items():
          self.writer.add_scalar(f'train/{k}', float(v), s)
    self.pending = []
    now = time.time()
    tokens_per_s = sum(float(m['tokens']) for m in fetched) / max(now - self.last_time, 1e-9)
    steps_per_s = (step - self.start_step) / max(now - self.t0, 1e-9)
    eta = (self.total - step) / max(steps_per_s, 1e-9)
    self.last_time = now
    last = fetched[-1]
    print(f'step {step}/{self.total} loss {last["loss"]:.3f} acc {last["accuracy"]:.3f} '
          f'tokens/s {tokens_per_s:,.0f} ETA {eta / 60:.1f} min'
          + (f' skipped {self.skipped} non-finite steps' if self.skipped else ''), flush=True)

  def log_eval(self, step: int, split: str, table: dict) -> None:
    for lang, m in table.items():
      print(f'step {step} {split} {lang}: loss {m["loss"]:.3f} accuracy {m["accuracy"]:.3f} '
            f'(unigram {m["unigram_accuracy"]:.3f})', flush=True)
      if self.writer:
        for k, v in m.items():
          self.writer.add_scalar(f'{split}_{lang}/{k}', v, step)
