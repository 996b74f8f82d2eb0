r"""Per-device memory of BERT-Base's train step: data=8 vs fsdp=8 (8 fake CPU devices).

Compiles plm's MLM train step (AdamW, batch 32 x 128, fp32) for each mesh
layout and prints what XLA's compiled executable says one device holds
(`memory_analysis()`): arguments (params + optimizer state + batch shard),
outputs, temporaries (activations, gradients). Nothing runs; nothing is
allocated.

  python experiments/benchmarks/memory_layouts.py
  python experiments/benchmarks/memory_layouts.py --size=mini --layouts=data8,fsdp8,data2_fsdp2_model2
  # CLM (logits at every position) with and without the chunked loss (train.loss_chunk):
  python experiments/benchmarks/memory_layouts.py --objective=clm --layouts=data8 --loss_chunks=0,16
"""
import argparse
import os
import sys
import time

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax

import sharded_step
from plm import partitioning
# pylint: enable=g-import-not-at-top,wrong-import-position

LAYOUTS = {
    'data8': dict(data=8, fsdp=1, model=1),  # what pmap did: params replicated
    'fsdp8': dict(data=1, fsdp=8, model=1),  # params and optimizer state split 8 ways
    'model8': dict(data=1, fsdp=1, model=8),  # heads / mlp / vocab split 8 ways
    'data2_fsdp2_model2': dict(data=2, fsdp=2, model=2),
}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--size', default='base', choices=('mini', 'small', 'base', 'large'))
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--seq_len', type=int, default=128)
  p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  p.add_argument('--remat', default='none')
  p.add_argument('--layouts', default='data8,fsdp8')
  p.add_argument('--objective', default='mlm', choices=('mlm', 'clm'))
  p.add_argument('--loss_chunks', default='0', help='train.loss_chunk values (0 = whole logits)')
  args = p.parse_args(argv)
  print(f'jax {jax.__version__}, {len(jax.devices())} {jax.default_backend()} devices; '
        f'size={args.size} batch={args.batch} seq_len={args.seq_len} dtype={args.dtype} '
        f'remat={args.remat} objective={args.objective}', flush=True)
  c = sharded_step.bert_config(args.size)
  c.model.dtype, c.model.remat = args.dtype, args.remat
  batch = sharded_step.random_batch(args.batch, args.seq_len)
  rows = []
  for name in args.layouts.split(','):
    if name not in LAYOUTS:
      raise SystemExit(f'--layouts: {name!r} is unknown; use some of {", ".join(LAYOUTS)}')
    for chunk in (int(x) for x in args.loss_chunks.split(',')):
      c.objective.name, c.train.loss_chunk = args.objective, chunk
      label = name + (f', loss_chunk={chunk}' if chunk else '')
      t0 = time.perf_counter()
      compiled = sharded_step.ShardedStep(c, partitioning.make_mesh(LAYOUTS[name]),
                                          batch).lower().compile()
      m = compiled.memory_analysis()
      mib = lambda b: b / 2**20
      rows.append((label, mib(m.argument_size_in_bytes), mib(m.output_size_in_bytes),
                   mib(m.temp_size_in_bytes), mib(m.argument_size_in_bytes + m.temp_size_in_bytes
                                                  + m.output_size_in_bytes
                                                  - m.alias_size_in_bytes),
                   time.perf_counter() - t0))
      print(f'  {label}: compiled in {rows[-1][-1]:.1f} s', flush=True)
  print('\nper device, MiB (outputs alias the donated state, counted once in "total")\n')
  print('| layout | arguments | outputs | temporaries | total | compile s |')
  print('|---|---|---|---|---|---|')
  for name, a, o, t, total, secs in rows:
    print(f'| {name} | {a:,.1f} | {o:,.1f} | {t:,.1f} | {total:,.1f} | {secs:.1f} |')


if __name__ == '__main__':
  main()
