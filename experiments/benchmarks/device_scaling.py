r"""Compile time and step time of plm's train step on 1, 2, 4 and 8 devices (data parallel).

One process with 8 fake CPU devices (or the real accelerators, when present);
for each device count n the mesh is data=n over the first n devices, the
global batch stays the same (weak scaling would grow it), and the step is
compiled ahead of time (timed), run --warmup steps, then timed over --steps.

On fake CPU devices all "devices" share the same cores, so the step time
cannot fall with n: what this shows there is the cost of partitioning and of
the collectives XLA inserts. On GPUs / TPUs it is the real scaling curve.

  python experiments/benchmarks/device_scaling.py
  python experiments/benchmarks/device_scaling.py --size=base --batch=16 --steps=3
"""
import argparse
import os
import statistics
import sys
import time

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_force_host_platform_device_count=8')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax

import sharded_step
from plm import partitioning
# pylint: enable=g-import-not-at-top,wrong-import-position


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--size', default='mini', choices=('mini', 'small', 'base'))
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--seq_len', type=int, default=128)
  p.add_argument('--steps', type=int, default=5, help='timed steps per device count')
  p.add_argument('--warmup', type=int, default=1)
  p.add_argument('--devices', default='1,2,4,8')
  p.add_argument('--layout', default='data', choices=('data', 'fsdp'),
                 help='the mesh axis the n devices form')
  args = p.parse_args(argv)
  counts = [int(n) for n in args.devices.split(',')]
  if max(counts) > len(jax.devices()):
    raise SystemExit(f'--devices asks for {max(counts)} but only {len(jax.devices())} are present')
  print(f'jax {jax.__version__}, {len(jax.devices())} {jax.default_backend()} devices, '
        f'{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; size={args.size} '
        f'batch={args.batch} seq_len={args.seq_len} layout={args.layout}', flush=True)
  c = sharded_step.bert_config(args.size)
  batch = sharded_step.random_batch(args.batch, args.seq_len)
  rows = []
  for n in counts:
    if args.batch % n:
      raise SystemExit(f'--batch={args.batch} is not divisible by {n} devices; pick a batch '
                       f'that {args.devices} all divide')
    mesh = partitioning.make_mesh({args.layout: n}, jax.devices()[:n])
    s = sharded_step.ShardedStep(c, mesh, batch)
    t0 = time.perf_counter()
    compiled = s.lower().compile()
    compile_s = time.perf_counter() - t0
    with jax.set_mesh(mesh):
      state = s.init(jax.random.PRNGKey(0))
      global_batch = jax.device_put(batch, s.batch_sharding)
      times = []
      for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        state, metrics = compiled(state, global_batch)
        jax.block_until_ready(metrics)
        if i >= args.warmup:
          times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    rows.append((n, compile_s, ms, args.batch * args.seq_len / ms * 1e3, float(metrics['loss'])))
    print(f'  {n} devices: compile {compile_s:.1f} s, step {ms:.0f} ms', flush=True)
  print(f'\nload now {os.getloadavg()[0]:.2f}; step = median of {args.steps} timed steps\n')
  print('| devices | compile s | step ms | tokens/s | loss |')
  print('|---|---|---|---|---|')
  for n, compile_s, ms, tps, loss in rows:
    print(f'| {n} | {compile_s:.1f} | {ms:.0f} | {tps:,.0f} | {loss:.3f} |')


if __name__ == '__main__':
  main()
