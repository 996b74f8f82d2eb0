r"""Square-matmul GFLOP/s on this CPU: JAX float32, bf16 in / f32 accumulate, bf16 in and
out, each with and without XLA's oneDNN / XNNPACK dot fusion; and PyTorch fp32 / bf16.

Each XLA_FLAGS setting runs in its own subprocess (XLA reads the flags once, at start).

  python experiments/benchmarks/matmul_peak.py
  python experiments/benchmarks/matmul_peak.py --sizes=1024 --repeats=3
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from side_by_side import cpu_model_and_matrix_units  # pylint: disable=wrong-import-position

FUSION_FLAGS = {
    'default': '',
    'onednn': '--xla_cpu_experimental_onednn_fusion_type=dot',
    'xnn': '--xla_cpu_experimental_xnn_fusion_type=dot',
}


def machine_line() -> str:
  """CPU model, core count, load and the matrix-unit flags /proc/cpuinfo lists."""
  model, units = cpu_model_and_matrix_units()
  return (f'machine: {model}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; '
          f'matrix-unit flags: {units}')


def best_seconds(fn, repeats: int) -> float:
  fn()  # compile / warm up
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def jax_rates(sizes, repeats) -> dict:
  """GFLOP/s of the three JAX variants at each size (run inside one XLA_FLAGS setting)."""
  import jax  # pylint: disable=import-outside-toplevel  # after XLA_FLAGS is set
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  dims = (((1,), (0,)), ((), ()))
  variants = {
      'f32': (jnp.float32, lambda a, b: a @ b),
      'bf16->f32': (jnp.bfloat16, lambda a, b: jax.lax.dot_general(
          a, b, dims, preferred_element_type=jnp.float32)),
      'bf16->bf16': (jnp.bfloat16, lambda a, b: a @ b),
  }
  out = {}
  for n in sizes:
    for name, (dtype, op) in variants.items():
      a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
      f = jax.jit(op)
      s = best_seconds(lambda: jax.block_until_ready(f(a, a)), repeats)
      out[f'{name} {n}'] = 2 * n ** 3 / s / 1e9
  return out


def torch_rates(sizes, repeats) -> dict:
  import torch  # pylint: disable=import-outside-toplevel
  out = {}
  for n in sizes:
    for name, dtype in (('f32', torch.float32), ('bf16', torch.bfloat16)):
      a = torch.randn(n, n).to(dtype)
      s = best_seconds(lambda: torch.mm(a, a), repeats)
      out[f'{name} {n}'] = 2 * n ** 3 / s / 1e9
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--sizes', default='1024,2048')
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--child', default='', help=argparse.SUPPRESS)  # jax or torch, in a subprocess
  args = p.parse_args(argv)
  sizes = [int(s) for s in args.sizes.split(',')]
  if args.child:
    rates = jax_rates if args.child == 'jax' else torch_rates
    print(json.dumps(rates(sizes, args.repeats)))
    return
  print(machine_line(), flush=True)
  runs = [(f'jax {name}', 'jax', flag) for name, flag in FUSION_FLAGS.items()]
  runs.append(('torch', 'torch', ''))
  for label, child, flag in runs:
    flags = ' '.join(filter(None, (os.environ.get('XLA_FLAGS', ''), flag)))
    env = dict(os.environ, XLA_FLAGS=flags)
    out = subprocess.run([sys.executable, __file__, f'--child={child}', f'--sizes={args.sizes}',
                          f'--repeats={args.repeats}'], env=env, check=True,
                         capture_output=True, text=True).stdout
    rates = json.loads(out.strip().splitlines()[-1])
    print(f'{label:14s} ' + ', '.join(f'{k}: {v:.0f}' for k, v in rates.items()) + ' GFLOP/s',
          flush=True)
  print(machine_line())


if __name__ == '__main__':
  main()
