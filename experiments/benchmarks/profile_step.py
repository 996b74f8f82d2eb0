r"""Where a train step's time goes: plm's MLM step against transformers' FlaxBertForMaskedLM.

Builds both steps exactly as train_throughput.py does (same shape, batch, masked
positions and optimizer), records `--steps` steps of each with `jax.profiler`, and
sums the time of every executed XLA op per part of the model, split into matmuls
(`dot_general`) and everything else. Ops are attributed by the `op_name` metadata
XLA keeps from the JAX program, so both models' parts line up by name.

  python experiments/benchmarks/profile_step.py --size=base --batch=8 --steps=2  # ~4 min on 2 cores
  ... --top=25  # also the 25 costliest ops of each step
  ... --dtypes=bfloat16  # the bf16 steps only (default: float32 and bfloat16, 4 steps)

Written for the XLA:CPU runtime (one trace event per executed op). This is how the
3-D attention kernels' slow weight gradients were found (benchmarks/README.md).
"""
import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax

import train_throughput as tt
# pylint: enable=g-import-not-at-top,wrong-import-position

# (part, pattern on op_name); the first match wins. Forward ops sit under jvp(...),
# backward ones under transpose(jvp(...)); the rest is the loss and the optimizer.
PARTS = (
    ('dropout (masks, apply)', r'[Dd]ropout'),
    ('attention', r'attention'),
    ('feed-forward', r'/mlp/|/mlp_ln/|intermediate|layer/\d+/output/'),
    ('LM head', r'mlm_head|cls/predictions'),
    ('embeddings', r'[Ee]mbed'),
    ('encoder, other', r'jvp\('),
    ('loss, optimizer, metrics', r''),
)
SKIP = ('$', 'Thunk', 'Slinky', 'Pjit', 'Common')  # Python frames and runtime wrappers


def op_names(hlo_text: str) -> dict:
  """HLO instruction name -> the JAX op_name it came from."""
  names = {}
  for line in hlo_text.splitlines():
    m = re.match(r'\s*(?:ROOT )?%?([\w.-]+) = .*?op_name="([^"]*)"', line)
    if m:
      names[m.group(1)] = m.group(2)
  return names


def profile(runner, steps: int, workdir: str) -> tuple[collections.Counter, collections.Counter]:
  """ms per step for each (part, matmul or other), and for each op_name, of one runner."""
  runner.run(1)  # warm
  with jax.profiler.trace(workdir):
    runner.run(steps)
  trace = glob.glob(os.path.join(workdir, 'plugins', 'profile', '*', '*.trace.json.gz'))
  if not trace:
    raise FileNotFoundError(f'jax.profiler wrote no *.trace.json.gz under {workdir}')
  with gzip.open(trace[0]) as f:
    events = json.load(f)['traceEvents']
  names = op_names(runner.step.as_text())
  parts, ops = collections.Counter(), collections.Counter()
  for e in events:
    if e.get('ph') != 'X' or e['name'].startswith(SKIP):
      continue
    op = names.get(e['name'], '')
    part = next(p for p, pattern in PARTS if re.search(pattern, op))
    kind = 'matmul' if 'dot_general' in op or e['name'].startswith('dot') else 'other'
    parts[part, kind] += e['dur'] / 1e3 / steps  # us -> ms per step
    ops[re.sub(r'layer([_/])\d+', r'layer\1*', op or e['name'])] += e['dur'] / 1e3 / steps
  return parts, ops


def main(argv=None):
  own = argparse.ArgumentParser(add_help=False)
  own.add_argument('--top', type=int, default=0, help='also list the N costliest ops')
  top, rest = own.parse_known_args(argv)
  args = tt.parse_args(rest)
  args.top = top.top
  runners, _ = tt.jax_runners(args, tt.make_config(args), args.dtypes.split(','))
  print(f'size={args.size} batch={args.batch} seq_len={args.seq_len}, {args.steps} profiled '
        f'steps each; load {os.getloadavg()[0]:.2f}; jax {jax.__version__}')
  with tempfile.TemporaryDirectory() as tmp:
    got, ops = zip(*[profile(r, args.steps, os.path.join(tmp, str(i)))
                     for i, r in enumerate(runners)])
  for runner, counter in zip(runners, ops if args.top else ()):
    print(f'\n{runner.name}: the {args.top} costliest ops, all layers summed '
          '(ms per step, op_name)')
    for op, ms in counter.most_common(args.top):
      print(f'{ms:9.1f}  {op[-150:]}')
  print('\n| part | ' + ' | '.join(f'{r.name} {kind} ms' for r in runners
                                    for kind in ('matmul', 'other')) + ' |')
  print('|---|' + '---|' * 2 * len(runners))
  for part, _ in PARTS:
    cells = [f'{g[part, kind]:,.0f}' for g in got for kind in ('matmul', 'other')]
    print(f'| {part} | ' + ' | '.join(cells) + ' |')
  totals = [sum(g.values()) for g in got]
  print('| **all ops** | ' + ' | '.join(f'{t:,.0f} | ' for t in totals) + '|')


if __name__ == '__main__':
  main()
