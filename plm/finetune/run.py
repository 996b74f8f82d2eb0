"""The `classify` and `generate` jobs: setup, restore, loop, held-out results.

Reuses plm/train.py's optimizer, step functions, evaluation, progress line and
checkpointing; what differs is the task (rows, model head, objective), the
start (init_from: the pre-trained encoder, params only) and the final report
(results.json in the workdir and a printed table).
"""
import functools
import json
import math
import os
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import sacrebleu

from plm import checkpoint, models, partitioning, train
from plm.data import bible_tasks
from plm.finetune import data as ft_data
from plm.finetune import unilm_decode
from plm.models.classifier import EncoderClassifier
from plm.objectives import classify as classify_objective
from plm.objectives import seq2seq_finetune

# Model fields that fix the parameter shapes: a pre-trained run must match them.
SHAPE_FIELDS = ('size', 'layers', 'hidden', 'heads', 'ff', 'max_len', 'num_segments',
                'num_languages', 'positions', 'post_ln')


class Task(NamedTuple):
  model: nn.Module
  objective: Callable  # (rng, batch) -> (inputs, targets, weights)
  train_ds: ft_data.ExampleSet
  heldout: Callable  # split -> {name: ExampleSet}
  prior_logp: np.ndarray  # log-probabilities of the baseline (majority class / target unigram)
  graft: Callable  # (fresh params, pre-trained EncoderLM params) -> params


def classify_task(config, tokenizer) -> Task:
  fc, languages = config.finetune, tuple(config.data.languages)
  def lang_id(lang):
    if config.model.num_languages and lang not in languages:
      raise ValueError(f'finetune language {lang!r} is not in data.languages {languages} (the '
                       'language embeddings); use one of them')
    return languages.index(lang) if config.model.num_languages else 0
  make = lambda lang, split: ft_data.genre_set(tokenizer, lang, lang_id(lang), split, fc,
                                               config.data.tfds_dir)
  train_ds = make(fc.train_language, 'train')
  counts = np.bincount(train_ds.arrays['labels'], minlength=len(bible_tasks.GENRES))
  encoder = models.build(config.model, tokenizer.vocab_size).encoder
  model = EncoderClassifier(encoder, num_classes=len(bible_tasks.GENRES), dropout=config.model.dropout)
  return Task(model, classify_objective.make(), train_ds,
              functools.cache(lambda split: {lang: make(lang, split)
                                             for lang in fc.test_languages}),
              np.log((counts + 1e-9) / counts.sum()).astype(np.float32),
              lambda fresh, lm: {**fresh, 'encoder': lm['encoder']})


def generate_task(config, tokenizer) -> Task:
  fc = config.finetune
  if config.model.num_segments < 2:
    raise ValueError(f'generate needs model.num_segments >= 2 (source/target token types), got '
                     f'{config.model.num_segments}; use configs/unilm.py')
  train_ds, _ = ft_data.pair_set(tokenizer, 'train', fc, config.data.tfds_dir)
  num_predictions = math.ceil(fc.target_mask_rate * (fc.seq_len - 3)) + 1  # every target fits
  special = (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.mask_id)
  objective = seq2seq_finetune.make(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                                    special_ids=special, num_predictions=num_predictions,
                                    target_mask_rate=fc.target_mask_rate)
  arrays = train_ds.arrays
  targets = arrays['tokens'][(arrays['token_types'] == 1) & (arrays['valid'] == 1)]
  counts = np.bincount(targets, minlength=tokenizer.vocab_size)
  pair = f'{fc.source}->{fc.target}'
  return Task(models.build(config.model, tokenizer.vocab_size), objective, train_ds,
              functools.cache(lambda split: {pair: ft_data.pair_set(tokenizer, split, fc,
                                                                    config.data.tfds_dir)[0]}),
              train.unigram_logp(counts, tokenizer), lambda fresh, lm: lm)


TASKS = {'classify': classify_task, 'generate': generate_task}


class Run(NamedTuple):
  s: train.Setup
  task: Task
  lm_abstract: Any  # the pre-trained EncoderLM's params (shapes) and shardings
  lm_sharding: Any


def setup(config, workdir: str, job: str) -> Run:
  """train.Setup for a fine-tuning task: mesh, rows, head, optimizer, jitted steps."""
  fc = config.finetune
  if fc.seq_len > config.model.max_len:
    raise ValueError(f'finetune.seq_len={fc.seq_len} exceeds model.max_len='
                     f'{config.model.max_len}; lower finetune.seq_len (model.max_len is fixed by '
                     'the pre-trained run)')
  mesh = partitioning.make_mesh(dict(config.mesh))
  rules = partitioning.check_rules(config.rules)
  if fc.batch_size % partitioning.data_parallel_size(mesh):
    raise ValueError(f'finetune.batch_size={fc.batch_size} must be divisible by the '
                     f'data-parallel size {partitioning.data_parallel_size(mesh)}')
  tokenizer = train.load_tokenizer(config, workdir)
  task = TASKS[job](config, tokenizer)
  print(f'{job}: {len(task.train_ds)} training rows of {fc.seq_len} tokens, fingerprint '
        f'{task.train_ds.fingerprint}; vocabulary {tokenizer.fingerprint}', flush=True)
  optim = config.optim.copy_and_resolve_references()
  optim.lr, optim.warmup_steps, optim.total_steps = fc.lr, fc.warmup_steps, fc.steps
  tx = train.make_optimizer(optim)
  keep = lambda b: {k: v for k, v in b.items() if k != 'langs' or config.model.num_languages}
  example = jax.tree_util.tree_map(jnp.asarray, keep(task.train_ds.batch(0, fc.batch_size,
                                                                          seed=config.seed)))

  def init(rng):
    inputs, _, _ = task.objective(rng, example)
    params = task.model.init(rng, **inputs)['params']
    return dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
                rng=jax.random.PRNGKey(config.seed + 1))

  lm = models.build(config.model, tokenizer.vocab_size)
  dummy = jnp.zeros((1, 8), jnp.int32)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    rng = jax.random.PRNGKey(config.seed)
    state_sharding = partitioning.logical_shardings(mesh, rules, jax.eval_shape(init, rng))
    unboxed_init = lambda r: nn.unbox(init(r))
    abstract_state = jax.eval_shape(unboxed_init, rng)
    lm_boxed = jax.eval_shape(lambda: lm.init(rng, dummy, dummy, None)['params'])
    lm_sharding = partitioning.logical_shardings(mesh, rules, lm_boxed)
    train_step, eval_step = train.make_steps(task.model, task.objective, tx, 1, task.prior_logp)
    batch_sharding = partitioning.batch_sharding(mesh)
    train_step = jax.jit(train_step, in_shardings=(state_sharding, batch_sharding),
                         out_shardings=(state_sharding, partitioning.replicated(mesh)),
                         donate_argnums=0)
    init_fn = jax.jit(unboxed_init, out_shardings=state_sharding)
  meta = dict(vocab=tokenizer.fingerprint, data=task.train_ds.fingerprint,
              vocab_size=tokenizer.vocab_size,
              model=dict(config.model.to_dict(), finetune=job))
  put = lambda b: jax.make_array_from_process_local_data(batch_sharding, keep(b))
  s = train.Setup(mesh, tokenizer, task.train_ds, init_fn, abstract_state, state_sharding,
                  train_step, jax.jit(eval_step), put, meta)
  return Run(s, task, nn.unbox(lm_boxed), lm_sharding)


def restore_or_init(config, run: Run, mngr):
  """The resume order: this workdir's checkpoint, then init_from's encoder, then scratch."""
  s = run.s
  state, _ = checkpoint.restore_latest(mngr, s.abstract_state, s.state_sharding,
                                       lambda saved: train.check_meta(saved, s.meta))
  if state is not None:
    return state
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(config.seed))
  if config.init_from:
    def check(saved):
      train.check_init_from(config, saved, s.meta)
      differ = [k for k in SHAPE_FIELDS if saved.get('model', {}).get(k) != config.model.get(k)]
      if differ:
        raise ValueError(f'config.init_from={config.init_from!r} holds another model shape ('
                         + ', '.join(f"model.{k}={saved['model'].get(k)!r}" for k in differ)
                         + '); use the config the pre-trained run used')
    lm_params, _ = checkpoint.restore_params(config.init_from, run.lm_abstract, run.lm_sharding,
                                             check=check)
    state['params'] = run.task.graft(state['params'], lm_params)
  return state


def fit(config, workdir: str, run: Run):
  """Fine-tunes for finetune.steps (resuming); returns the final state."""
  fc, s = config.finetune, run.s
  mngr = checkpoint.manager(workdir, max_to_keep=config.train.keep_checkpoints)
  state = restore_or_init(config, run, mngr)
  step = int(state['step'])
  progress = train.Progress(step, fc.steps, None)
  eval_rng = jax.random.PRNGKey(config.seed + 2)
  validation = run.task.heldout('validation') if fc.eval_every else {}
  with jax.set_mesh(s.mesh):
    while step < fc.steps:
      batch = s.train_ds.batch(step, fc.batch_size, seed=config.seed)
      state, metrics = s.train_step(state, s.put(batch))
      step += 1
      progress.add(step, metrics)
      if step % config.train.log_every == 0 or step == fc.steps:
        progress.flush(step)
      if fc.eval_every and step % fc.eval_every == 0 and step < fc.steps:
        progress.log_eval(step, 'validation', train.evaluate(
            s.eval_step, state['params'], validation, config.train.eval_batch_size, eval_rng,
            s.put))
    if mngr.latest_step() != step:
      checkpoint.save(mngr, step, state, dict(s.meta, data_step=step))
    checkpoint.wait(mngr, step)
  return state


def heldout_table(config, run: Run, params, split='test') -> dict:
  """train.evaluate's table; 'unigram' there is the majority class / target unigram."""
  with jax.set_mesh(run.s.mesh):
    return train.evaluate(run.s.eval_step, params, run.task.heldout(split),
                          config.train.eval_batch_size, jax.random.PRNGKey(config.seed + 2),
                          run.s.put)


def decode_test(config, run: Run, params) -> dict:
  """Beam-search the test sources; BLEU against the references (and of copying the source)."""
  fc, tok = config.finetune, run.s.tokenizer
  _, pairs = ft_data.pair_set(tok, 'test', fc, config.data.tfds_dir)
  if fc.max_test_examples:
    pairs = pairs[:fc.max_test_examples]
  width = max(len(src) for src, _ in pairs) + 2
  decoder = unilm_decode.make_decoder(
      run.task.model, mask_id=tok.mask_id, eos_id=tok.eos_id, pad_id=tok.pad_id,
      batch_size=fc.decode_batch_size, prompt_width=width,
      max_len=min(fc.seq_len, width + fc.max_target_len), beam_size=fc.beam_size,
      length_penalty=fc.length_penalty, no_repeat_ngram=fc.no_repeat_ngram,
      cached=fc.decode_cache)
  hyps = []
  for start in range(0, len(pairs), fc.decode_batch_size):
    chunk = [src for src, _ in pairs[start:start + fc.decode_batch_size]]
    chunk += [chunk[-1]] * (fc.decode_batch_size - len(chunk))  # one shape: one compile
    prompt, valid = unilm_decode.left_pad(chunk, width, bos_id=tok.bos_id, eos_id=tok.eos_id,
                                          pad_id=tok.pad_id)
    out = np.asarray(decoder(params, prompt, valid))
    hyps += [tok.decode(unilm_decode.strip(row, tok.eos_id)) for row in out]
  hyps = hyps[:len(pairs)]
  refs = [ref for _, ref in pairs]
  sources = [tok.decode(src) for src, _ in pairs]
  return dict(bleu=sacrebleu.corpus_bleu(hyps, [refs]).score,
              copy_bleu=sacrebleu.corpus_bleu(sources, [refs]).score,
              examples=len(pairs), samples=[dict(source=s, hypothesis=h, reference=r)
                                            for s, h, r in list(zip(sources, hyps, refs))[:5]])


def run_job(config, workdir: str, job: str) -> dict:
  """The job: fine-tune, evaluate the test split, write results.json, print a table."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  run = setup(config, workdir, job)
  state = fit(config, workdir, run)
  params = state['params']
  table = heldout_table(config, run, params)
  results = dict(job=job, init_from=config.init_from, seed=config.seed, steps=int(state['step']),
                 train_rows=len(run.s.train_ds), train_skipped=run.s.train_ds.skipped,
                 test=table)
  if job == 'classify':
    # The baseline to beat: always answering the test split's own most frequent genre.
    for name, ds in run.task.heldout('test').items():
      table[name]['majority_share'] = float(np.bincount(ds.arrays['labels']).max() / len(ds))
    rows = ['| test language | accuracy | test majority share | verses |', '|---|---|---|---|']
    rows += [f"| {k} | {m['accuracy']:.3f} | {m['majority_share']:.3f} | {m['predictions']} |"
             for k, m in table.items()]
  else:
    results['decode'] = decode_test(config, run, params)
    d, m = results['decode'], next(iter(table.values()))
    rows = ['| pair | masked-target accuracy | unigram | BLEU | copy-source BLEU | decoded |',
            '|---|---|---|---|---|---|',
            f"| {next(iter(table))} | {m['accuracy']:.3f} | {m['unigram_accuracy']:.3f} | "
            f"{d['bleu']:.2f} | {d['copy_bleu']:.2f} | {d['examples']} |"]
    for sample in d['samples'][:3]:
      print(f"  source: {sample['source']}\n  output: {sample['hypothesis']}\n"
            f"  target: {sample['reference']}", flush=True)
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=1)
  print(f'\n{job} results (test split, step {results["steps"]}):\n' + '\n'.join(rows),
        flush=True)
  return results


def classify(config, workdir: str) -> dict:
  """The `classify` job (plm/main.py)."""
  return run_job(config, workdir, 'classify')


def generate(config, workdir: str) -> dict:
  """The `generate` job (plm/main.py)."""
  return run_job(config, workdir, 'generate')
