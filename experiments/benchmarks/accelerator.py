r"""The one prepared accelerator check (issue #20 part 3): under 10 minutes on one GPU or TPU.

  python experiments/benchmarks/accelerator.py           # on the accelerator machine
  python experiments/benchmarks/accelerator.py --smoke   # on a CPU: small shapes, that it runs

1. BERT-Base MLM train step (AdamW, batch 32 x 128, one device) in bf16: step time,
   tokens/s and MFU (mfu.train_flops' model FLOPs over this device's measured bf16 matmul
   peak) for each `model.attention`: einsum (plm's own), xla and cudnn
   (jax.nn.dot_product_attention's implementations; cudnn only on NVIDIA GPUs).
2. The same step's device memory for each remat policy (XLA's memory_analysis of the
   compiled step: nothing else allocated).
3. Layouts: the step compiled and run once on data8, fsdp8 and data2_fsdp2_model2, on 8 real devices when there are, else on 8 fake CPU devices
   (a subprocess of memory_layouts.py, compile only).
Prints the tables and writes them to --out, for experiments/benchmarks/README.md.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp

import memory_layouts
import mfu
import sharded_step
from plm import partitioning
from plm.models import encoder, sizes
# pylint: enable=g-import-not-at-top,wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
# model8 would split BERT's 30,522-row vocabulary 8 ways, which XLA refuses (not divisible)
LAYOUTS = ('data8', 'fsdp8', 'data2_fsdp2_model2')


def peak_bf16_flops(n: int) -> float:
  """The best bf16 FLOP/s of an n x n x n matmul on the default device."""
  a = jnp.ones((n, n), jnp.bfloat16)
  matmul = jax.jit(jnp.dot)
  jax.block_until_ready(matmul(a, a))
  best = float('inf')
  for _ in range(10):
    t0 = time.perf_counter()
    jax.block_until_ready(matmul(a, a))
    best = min(best, time.perf_counter() - t0)
  return 2.0 * n ** 3 / best


def time_step(c, batch, steps: int):
  """(compiled step, median step seconds, final loss) on one device."""
  s = sharded_step.ShardedStep(c, partitioning.make_mesh({'data': 1}, jax.devices()[:1]), batch)
  compiled = s.lower().compile()
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(0))
    device_batch = jax.device_put(batch, s.batch_sharding)
    times = []
    for _ in range(steps + 2):  # two warm-up steps
      t0 = time.perf_counter()
      state, metrics = compiled(state, device_batch)
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - t0)
  return compiled, statistics.median(times[2:]), float(metrics['loss'])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--smoke', action='store_true', help='BERT-Mini, batch 4 x 32, 2 steps')
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--out', default=os.path.join(HERE, 'accelerator.md'))
  args = p.parse_args(argv)
  size, b, t, steps = ('mini', 4, 32, 2) if args.smoke else ('base', 32, 128, args.steps)
  backend = jax.default_backend()
  lines = [f'jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind} '
           f'({backend}); BERT-{size} MLM step, batch {b} x {t}, bf16, one device', '']
  peak = peak_bf16_flops(512 if args.smoke else 8192)
  shape = sizes.SIZES[size]
  flops = mfu.train_flops(shape, sharded_step.VOCAB, b, t, head_rows=b * 20)
  batch = sharded_step.random_batch(b, t)
  lines += [f'bf16 matmul peak measured: {peak / 1e12:.2f} TFLOP/s; model FLOPs a step: '
            f'{flops / 1e9:.1f} G', '', '| attention | step ms | tokens/s | MFU | loss |',
            '|---|---|---|---|---|']
  attentions = ['einsum', 'xla'] + (['cudnn'] if backend == 'gpu' else [])
  # the fused kernels have no attention dropout: every arm runs without it, plus plm's
  # default (einsum with BERT's attention dropout 0.1) for its cost
  for attention, dropout in [('einsum', 0.1)] + [(a, 0.0) for a in attentions]:
    c = sharded_step.bert_config(size)
    c.model.dtype, c.model.attention, c.model.attention_dropout = 'bfloat16', attention, dropout
    _, sec, loss = time_step(c, batch, steps)
    lines.append(f'| {attention}, attention dropout {dropout} | {sec * 1e3:.1f} | '
                 f'{b * t / sec:,.0f} | '
                 f'{flops / sec / peak:.1%} | {loss:.3f} |')
    print(lines[-1], flush=True)
  lines += ['', f'memory of the step per remat policy (attention={attentions[-1]}), MiB', '',
            '| remat | arguments | temporaries | total |', '|---|---|---|---|']
  for remat in encoder.REMAT_POLICIES:
    c = sharded_step.bert_config(size)
    c.model.dtype, c.model.attention, c.model.remat = 'bfloat16', attentions[-1], remat
    c.model.attention_dropout = 0.0
    s = sharded_step.ShardedStep(c, partitioning.make_mesh({'data': 1}, jax.devices()[:1]),
                                 batch)
    m = s.lower().compile().memory_analysis()
    mib = lambda x: x / 2**20
    lines.append(f'| {remat} | {mib(m.argument_size_in_bytes):,.1f} | '
                 f'{mib(m.temp_size_in_bytes):,.1f} | {mib(m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes):,.1f} |')
    print(lines[-1], flush=True)
  lines += ['', 'eight-device layouts', '']
  if jax.device_count() >= 8:
    lines += ['| layout | one step ms | loss |', '|---|---|---|']
    for name in LAYOUTS:
      axes = memory_layouts.LAYOUTS[name]
      c = sharded_step.bert_config(size)
      c.model.dtype, c.model.attention_dropout = 'bfloat16', 0.0
      s = sharded_step.ShardedStep(c, partitioning.make_mesh(axes, jax.devices()[:8]),
                                   sharded_step.random_batch(max(b, 8), t))
      compiled = s.lower().compile()
      with jax.set_mesh(s.mesh):
        state = s.init(jax.random.PRNGKey(0))
        t0 = time.perf_counter()
        _, metrics = compiled(state, jax.device_put(sharded_step.random_batch(max(b, 8), t),
                                                    s.batch_sharding))
        loss = float(metrics['loss'])
      lines.append(f'| {name} | {(time.perf_counter() - t0) * 1e3:.0f} | {loss:.3f} |')
  else:
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, 'memory_layouts.py'), '--size=mini',
         f'--layouts={",".join(LAYOUTS)}', f'--batch={max(b, 8)}',
         f'--seq_len={t}'], capture_output=True, text=True, check=True,
        env=dict(os.environ, JAX_PLATFORMS='cpu'))
    lines += [f'(fewer than 8 {backend} devices: 8 fake CPU devices, BERT-Mini, compile only)',
              ''] + [line for line in out.stdout.splitlines() if line.startswith('|')]
  text = '\n'.join(lines) + '\n'
  with open(args.out, 'w', encoding='utf-8') as f:
    f.write(text)
  print(text)


if __name__ == '__main__':
  main()
