r"""Bitext mining at scale: plm.evaluate.mining.mine on --n x --n synthetic unit vectors
with planted pairs, JAX's blocked k-NN vs faiss (IndexFlatIP) side by side in one run.

  nice python experiments/benchmarks/mining_memory.py            # 10^5 x 10^5, 128-d
  python experiments/benchmarks/mining_memory.py --n=20000       # a quick check

Each backend runs in a fresh subprocess, so each peak RSS (ru_maxrss of that process) is
its own: Python + JAX + the data + mining. The RSS just before mining is printed too; the
difference is what mining itself holds at its peak. Both run LASER's defaults (k=4, ratio
margin, 'max' retrieval) on the same data; the wall time of mine() includes the compile
(about a second) and both directions' k-NN; CPU s is the process's CPU time over all its
threads (on a shared machine, the work done, apart from waiting for the cores). Recall:
planted pairs among the mined ones; top-P: planted pairs among the P best-scored (P = the
number planted).

--dim 128 is plm's CPU LASER (models.config('laser'): 2 x 64 BiLSTM states); LASER's
1024-d vectors cost ~8x the time (the k-NN is a [n, dim] x [dim, n] product), with the same
memory for mining beyond the inputs (blocks of block x block similarities, n x k neighbours).
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

# The repo root, so `plm` imports without installing.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

LIMIT_GB = 2.0  # the bound on mining 10^5 x 10^5 vectors


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--n', type=int, default=100_000, help='vectors per side')
  p.add_argument('--dim', type=int, default=128, help="plm's CPU LASER size (2 x 64)")
  p.add_argument('--pairs', type=int, default=0, help='planted pairs (0: n / 10)')
  p.add_argument('--cos', type=float, default=0.5, help="planted pairs' expected cosine")
  p.add_argument('--k', type=int, default=4, help='neighbourhood size (LASER: 4)')
  p.add_argument('--block', type=int, default=0, help="jnp rows per block (0: mining.BLOCK)")
  p.add_argument('--backends', default='jnp,faiss', help='comma-separated; faiss if installed')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--child', default='', help=argparse.SUPPRESS)  # internal: run one backend
  p.add_argument('--out', default='', help=argparse.SUPPRESS)
  return p.parse_args(argv)


def unit(v):
  return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_data(args):
  """x, y [n, dim] float32 random unit rows; y[trg[p]] is x[src[p]] plus noise at an
  expected cosine of --cos (noise of norm sigma orthogonal on average: cos = 1/sqrt(1+s^2))."""
  rng = np.random.default_rng(args.seed)
  x = unit(rng.standard_normal((args.n, args.dim), dtype=np.float32))
  y = unit(rng.standard_normal((args.n, args.dim), dtype=np.float32))
  pairs = args.pairs or args.n // 10
  src = rng.choice(args.n, pairs, replace=False)
  trg = rng.choice(args.n, pairs, replace=False)
  sigma = np.sqrt(1 / args.cos ** 2 - 1)
  noise = unit(rng.standard_normal((pairs, args.dim), dtype=np.float32))
  y[trg] = unit(x[src] + np.float32(sigma) * noise)
  return x, y, src, trg


def rss_mib(field='VmRSS'):
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1]) / 1024  # kB
  return float('nan')


def child(args):
  """One backend in this (fresh) process: mine, then report time, memory and recall."""
  import jax  # pylint: disable=g-import-not-at-top
  from plm.evaluate import mining  # pylint: disable=g-import-not-at-top
  jax.devices()  # start JAX's runtime before the baseline: it is not mining's memory
  x, y, src, trg = make_data(args)
  before = rss_mib()
  start, cpu = time.perf_counter(), time.process_time()
  mined = mining.mine(x, y, k=args.k, backend=args.child, block=args.block or mining.BLOCK)
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu  # cpu: all threads
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
  gold = set(zip(src.tolist(), trg.tolist()))
  pairs = np.array([(i, j) for _, i, j in mined], np.int64).reshape(-1, 2)
  np.save(args.out + '.npy', pairs)
  top = {(i, j) for _, i, j in mined[:len(gold)]}
  result = dict(backend=args.child, wall_s=wall, cpu_s=cpu, peak_mib=peak, before_mib=before,
                mined=len(mined), recall=mining.f1_against_gold(mined, gold)['recall'],
                top_p=len(top & gold) / len(gold), load=os.getloadavg()[0])
  with open(args.out, 'w') as f:
    json.dump(result, f)


def main(args):
  backends = [b for b in args.backends.split(',') if b]
  if 'faiss' in backends:
    try:
      import faiss  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      print('faiss not installed (pip install faiss-cpu): jnp only')
      backends.remove('faiss')
  import jax  # pylint: disable=g-import-not-at-top
  print(f'machine: {platform.machine()} {os.cpu_count()} CPUs (affinity '
        f'{len(os.sched_getaffinity(0))}), load {os.getloadavg()[0]:.2f}; python '
        f'{platform.python_version()}, jax {jax.__version__}, numpy {np.__version__}')
  print(f'data: {args.n:,} x {args.n:,} unit vectors, dim {args.dim}, '
        f'{args.pairs or args.n // 10:,} planted pairs at cosine {args.cos}; k={args.k}, '
        "margin='ratio', retrieval='max'")
  results, pairs = [], {}
  with tempfile.TemporaryDirectory() as tmp:
    for backend in backends:
      out = os.path.join(tmp, backend + '.json')
      cmd = [sys.executable, __file__, '--child', backend, '--out', out] + [
          f'--{name}={getattr(args, name)}'
          for name in ('n', 'dim', 'pairs', 'cos', 'k', 'block', 'seed')]
      subprocess.run(cmd, check=True)
      with open(out) as f:
        results.append(json.load(f))
      pairs[backend] = np.load(out + '.npy')
      r = results[-1]
      print(f'  {backend}: mine {r["wall_s"]:.1f} s ({r["cpu_s"]:.1f} CPU s), peak RSS '
            f'{r["peak_mib"]:,.0f} MiB, load {r["load"]:.2f}', flush=True)
  if len(pairs) == 2:
    a, b = (set(map(tuple, p.tolist())) for p in pairs.values())
    print(f'same mined pairs in both backends: {len(a & b):,} of {len(a):,} / {len(b):,}')
  print(f'load now {os.getloadavg()[0]:.2f}\n')
  print('| backend | mine s | CPU s | peak RSS MiB | RSS before mining MiB | mining peak MiB | '
        f'mined | recall | top-P | peak < {LIMIT_GB:g} GB |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  for r in results:
    under = r['peak_mib'] < LIMIT_GB * 1024
    print(f'| {r["backend"]} | {r["wall_s"]:.1f} | {r["cpu_s"]:.1f} | {r["peak_mib"]:,.0f} | '
          f'{r["before_mib"]:,.0f} | {r["peak_mib"] - r["before_mib"]:,.0f} | {r["mined"]:,} | '
          f'{r["recall"]:.4f} | {r["top_p"]:.4f} | {"yes" if under else "NO"} |')
  if not all(r['peak_mib'] < LIMIT_GB * 1024 for r in results):
    sys.exit(f'peak memory over {LIMIT_GB:g} GB')


if __name__ == '__main__':
  a = parse_args()
  child(a) if a.child else main(a)  # pylint: disable=expression-not-assigned
