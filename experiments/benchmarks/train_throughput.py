r"""MLM train-step throughput: plm's EncoderLM vs transformers' FlaxBertForMaskedLM
and PyTorch eager BertForMaskedLM, each in float32 and in its own best bf16 mode, with
model FLOPs utilisation (MFU).

All get the same shape, the same batch, the same masked positions and AdamW
with global-norm clipping (plm.train.make_optimizer for the JAX two, torch.optim
.AdamW + clip_grad_norm_ for PyTorch), dropout 0.1. bf16 is each one's own mixed
precision, float32 weights and optimizer throughout: plm model.dtype=bfloat16 (bf16
matmul operands, float32 accumulation), HF Flax dtype=bfloat16, PyTorch's forward under
torch.autocast('cpu', bfloat16). JAX steps are jitted
with the train state donated; PyTorch runs eagerly (no torch.compile), as most
users run it. Timing rounds alternate between the implementations (blocks of
--block steps) so background load hits all alike, and the median block is
reported. MFU is each implementation's model FLOPs per step (counted below,
its own head included) over its step time, against the peak matmul rate of its
precision on this machine, measured in the same run (the best of a JAX and a
PyTorch --peak_n square matmul, float32 or bf16).

  python experiments/benchmarks/train_throughput.py
  python experiments/benchmarks/train_throughput.py --size=base --batch=8 --steps=4 \
      --warmup=1 --block=2  # ~3 min on 2 cores
  python experiments/benchmarks/train_throughput.py --no_torch  # without PyTorch installed
  python experiments/benchmarks/train_throughput.py --dtypes=float32  # float32 only

The HF model computes logits at every position ([B, L, V]); plm's gathers the
`num_predictions` masked slots per row first (BERT's max_predictions_per_seq).
That difference is part of what is measured.
"""
import argparse
import functools
import os
import statistics
import sys

# The repo root, so `plm` and `configs` import without installing.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import transformers

import mfu
from side_by_side import Runner, alternate, check_finite, machine, warm_up
from configs import xlm
from plm import models, partitioning, train
from plm.models import sizes
from plm.objectives import base, mlm
# pylint: enable=g-import-not-at-top,wrong-import-position

VOCAB = 30522  # BERT's uncased WordPiece vocabulary
SPECIAL_IDS = (0, 2, 3, 4)  # pad, bos, eos, mask: never picked for prediction
MASK_ID = 4


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--steps', type=int, default=20, help='timed steps per model')
  p.add_argument('--warmup', type=int, default=3, help='untimed steps after compiling')
  p.add_argument('--block', type=int, default=5, help='steps per timing block (interleaved)')
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--seq_len', type=int, default=128)
  p.add_argument('--size', default='mini', choices=('mini', 'small', 'base'))
  p.add_argument('--num_predictions', type=int, default=20, help="plm's slots per row")
  p.add_argument('--dtypes', default='float32,bfloat16',
                 help='comma-separated, each of float32 and bfloat16: every implementation runs '
                      'in each (bfloat16: its own mixed precision)')
  p.add_argument('--no_torch', action='store_true', help='skip PyTorch (pip install .[bench])')
  p.add_argument('--peak_n', type=int, default=2048, help='square matmul size for the peak')
  return p.parse_args(argv)


def make_config(args):
  """plm's config: the XLM default, re-shaped to BERT (segments, no languages)."""
  c = xlm.get_config()
  c.model.size = args.size
  c.model.num_languages = 0
  c.model.num_segments = 2  # BERT's token types, as HF's type_vocab_size
  c.model.max_len = 512
  c.model.dropout = c.model.attention_dropout = 0.1
  c.objective.num_predictions = args.num_predictions
  c.optim.lr = 1e-4
  c.optim.warmup_steps = 10
  c.optim.total_steps = 10_000
  c.optim.weight_decay = 0.01
  c.optim.b1, c.optim.b2 = 0.9, 0.999
  return c


def make_batch(args):
  """Random tokens (throughput does not depend on content), one packed segment per row."""
  rng = np.random.RandomState(0)
  shape = (args.batch, args.seq_len)
  return dict(tokens=rng.randint(max(SPECIAL_IDS) + 1, VOCAB, shape).astype(np.int32),
              segment_ids=np.ones(shape, np.int32),
              positions=np.broadcast_to(np.arange(args.seq_len, dtype=np.int32), shape).copy())


def plm_objective(mlm_fn, loss_chunk: int = 0) -> base.Objective:
  """plm's MLM Objective (one 'mlm' head) around `mlm_fn`, as objectives.build makes it."""
  return base.token_objective(
      'mlm', mlm_fn, prior_logp=np.full(VOCAB, -np.log(VOCAB), np.float32),  # its cost only
      loss_chunk=loss_chunk)


def setup_plm(c, mlm_fn, tx, batch):
  """(jitted train step (state, batch), initial state) for plm."""
  model = models.build(c.model, VOCAB)
  objective = plm_objective(mlm_fn, c.train.loss_chunk)
  rng = jax.random.PRNGKey(0)

  @jax.jit
  def init(rng, batch):
    inputs, _ = objective.prepare(rng, batch, {})
    params = nn.unbox(model.init(rng, **inputs)['params'])
    return dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
                rng=jax.random.PRNGKey(1))

  state = init(rng, batch)
  train_step, _ = train.make_steps(model, objective, tx, accum_steps=1,
                                   weights=base.loss_weights(objective, None))
  # No frozen extras for MLM: the step's `extras` argument is {}.
  return jax.jit(lambda state, batch: train_step(state, {}, batch), donate_argnums=0), state


def setup_hf(c, tx, hf_batch, dtype: str):
  """(jitted train step, initial state) for transformers' FlaxBertForMaskedLM computing in
  `dtype` (its params stay float32)."""
  shape = sizes.get(c.model.size)
  config = transformers.BertConfig(
      vocab_size=VOCAB, hidden_size=shape['hidden'], num_hidden_layers=shape['layers'],
      num_attention_heads=shape['heads'], intermediate_size=shape['ff'], hidden_act='gelu',
      hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512,
      type_vocab_size=2, layer_norm_eps=1e-12)
  # _do_init=False + jitted init: HF's eager init compiles op by op (minutes).
  model = transformers.FlaxBertForMaskedLM(config, seed=0, _do_init=False,
                                           dtype=getattr(jnp, dtype))
  init = jax.jit(functools.partial(model.init_weights, input_shape=hf_batch['input_ids'].shape))
  params = flax.core.unfreeze(init(jax.random.PRNGKey(0)))

  @jax.jit
  def init_state(params):
    return dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
                rng=jax.random.PRNGKey(1))

  def train_step(state, b):
    rng = jax.random.fold_in(state['rng'], state['step'])

    def loss_fn(params):
      logits = model(b['input_ids'], b['attention_mask'], b['token_type_ids'],
                     b['position_ids'], params=params, dropout_rng=rng,
                     train=True)[0].astype(jnp.float32)
      # Labels at every position; weight 0 where the collator put -100.
      losses = optax.softmax_cross_entropy_with_integer_labels(
          logits, jnp.maximum(b['labels'], 0))
      w = (b['labels'] >= 0).astype(jnp.float32)
      return jnp.sum(losses * w) / jnp.maximum(jnp.sum(w), 1.0)

    loss, grads = jax.value_and_grad(loss_fn)(state['params'])
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    new_state = dict(params=optax.apply_updates(state['params'], updates),
                     opt_state=opt_state, step=state['step'] + 1, rng=state['rng'])
    return new_state, dict(loss=loss)

  return jax.jit(train_step, donate_argnums=0), init_state(params)


def hf_inputs(mlm_fn, batch):
  """HF's batch with plm's masking, as a data collator would hand it over.

  The same 15% of positions are corrupted and labelled (-100 elsewhere) as in
  plm's first step; plm re-draws its masks inside every step (a few top-k ops).
  """
  inputs, targets, weights = jax.jit(mlm_fn)(jax.random.PRNGKey(0), batch)
  b, l = batch['tokens'].shape
  labels = np.full((b, l), -100, np.int32)
  rows = np.arange(b)[:, None].repeat(targets.shape[1], 1)
  pos, tgt, w = map(np.asarray, (inputs['predict_positions'], targets, weights))
  labels[rows[w > 0], pos[w > 0]] = tgt[w > 0]
  return dict(input_ids=np.asarray(inputs['tokens']),
              attention_mask=(batch['segment_ids'] > 0).astype(np.int32),
              token_type_ids=np.zeros((b, l), np.int32),
              position_ids=batch['positions'], labels=labels)


def jax_runners(args, c, dtypes):
  """([plm, HF Flax] compiled Runners per dtype on the same batch and optimizer, HF's
  batch)."""
  batch = make_batch(args)
  mlm_fn = mlm.make(mask_id=MASK_ID, vocab_size=VOCAB, special_ids=SPECIAL_IDS,
                    num_predictions=args.num_predictions, rate=c.objective.mask_rate)
  tx = train.make_optimizer(c.optim)  # the same optimizer for both
  # A 1-device mesh + rules, as plm.train runs the model (logical constraints resolve).
  mesh = partitioning.make_mesh({'data': -1})
  runners = []
  for dtype in dtypes:
    c.model.dtype = dtype
    with jax.set_mesh(mesh), nn.logical_axis_rules(partitioning.DEFAULT_RULES):
      runners.append(Runner(f'plm {dtype}', *setup_plm(c, mlm_fn, tx, batch), batch))
  hf_batch = hf_inputs(mlm_fn, batch)
  if not hasattr(transformers, 'FlaxBertForMaskedLM'):  # transformers 5 dropped Flax
    print(f'HF Flax skipped: transformers {transformers.__version__} has no Flax models '
          '(pip install "transformers<5")')
    return runners, hf_batch
  for dtype in dtypes:
    runners.append(Runner(f'HF Flax {dtype}', *setup_hf(c, tx, hf_batch, dtype), hf_batch))
  return runners, hf_batch


def main(argv=None):
  args = parse_args(argv)
  c = make_config(args)
  shape = sizes.get(args.size)
  print(machine(f', transformers {transformers.__version__}'))
  dtypes = args.dtypes.split(',')
  if not set(dtypes) <= {'float32', 'bfloat16'}:
    raise SystemExit(f'--dtypes={args.dtypes}: use float32 and/or bfloat16')
  print(f'shape: size={args.size} {shape} vocab={VOCAB} batch={args.batch} '
        f'seq_len={args.seq_len}, {" and ".join(dtypes)}, dropout 0.1; plm predicts '
        f'{args.num_predictions} slots/row, HF all positions')

  runners, hf_batch = jax_runners(args, c, dtypes)
  if not args.no_torch:
    import torch_bert  # pylint: disable=g-import-not-at-top  # torch only when asked for
    runners += [torch_bert.TorchRunner(shape, VOCAB, c.optim, hf_batch, dtype == 'bfloat16')
                for dtype in dtypes]
  peaks = {}
  for dtype in dtypes:  # the limit each precision's MFU is measured against
    peaks[dtype] = mfu.peak_matmul_flops(args.peak_n, with_torch=not args.no_torch, dtype=dtype)
    print(f'peak {dtype} matmul ({args.peak_n}^3, best of JAX and PyTorch): '
          f'{peaks[dtype] / 1e9:,.1f} GFLOP/s', flush=True)

  for r in runners:
    print(f'{r.name}: {r.params / 1e6:.2f}M params, compile {r.compile_s:.1f} s')
  # Warm up interleaved too: run alone, plm's first step is the only slow one (3.9 s, then
  # 3.2 s at Base), but right after the other two set up it ran ~1.8x slower for a minute.
  warm_up(runners, args.warmup)
  alternate(runners, args.steps, args.block)
  check_finite(runners)

  tokens = args.batch * args.seq_len
  rows = []
  for r in runners:
    ms = statistics.median(r.block_ms)
    # plm predicts the gathered slots only; the peers every position
    flops = mfu.train_flops(shape, VOCAB, args.batch, args.seq_len,
                            args.batch * args.num_predictions if r.name.startswith('plm')
                            else tokens)
    peak = peaks['bfloat16' if 'bf' in r.name.split()[-1] else 'float32']
    rows.append((r.name, ms, tokens / (ms / 1e3), flops, flops / (ms / 1e3) / peak))
  base = next((r for r in runners if not r.name.startswith('plm')), runners[0])  # first peer
  base_tps = rows[runners.index(base)][2]
  print(f'\nmedian over {len(runners[0].block_ms)} blocks of <= {args.block} steps '
        f'({args.steps} timed steps each, {args.warmup} warm-up); load now '
        f'{os.getloadavg()[0]:.2f}; MFU against the peak of its precision '
        f'({", ".join(f"{d} {p / 1e9:,.0f}" for d, p in peaks.items())} GFLOP/s)')
  for r in runners[1:]:
    ratios = [x / p for p, x in zip(runners[0].block_ms, r.block_ms)]
    print(f'  {r.name} / {runners[0].name} step time per block: {min(ratios):.2f}x .. '
          f'{max(ratios):.2f}x')
  print(f'\n| implementation | step ms | tokens/s | vs {base.name} | GFLOP/step | MFU |')
  print('|---|---|---|---|---|---|')
  for name, ms, tps, flops, util in rows:
    print(f'| {name} | {ms:.1f} | {tps:,.0f} | {tps / base_tps:.2f}x | {flops / 1e9:,.1f} | '
          f'{util:.1%} |')


if __name__ == '__main__':
  main()
