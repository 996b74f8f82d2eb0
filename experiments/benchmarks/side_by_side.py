"""Timing implementations side by side in one process, as every throughput script does.

A runner has `name`, `params` (trained parameter count), `compile_s`, `losses`
(one per step run) and `block_ms` (per-step ms of each timed block), and
`run(n)`; `Timed` adds `timed(n)`. Warm-up and timed blocks alternate between
the runners, so load that changes during a run hits every implementation alike.
"""
import os
import platform
import time

import jax
import numpy as np


class Timed:
  """`timed(n)`: runs n steps and records their mean wall time (ms) as one block."""
  block_ms: list

  def run(self, n: int) -> None:
    raise NotImplementedError

  def timed(self, n: int) -> None:
    t0 = time.perf_counter()
    self.run(n)
    self.block_ms.append((time.perf_counter() - t0) * 1e3 / n)


class Runner(Timed):
  """A jitted, donating JAX step `step(state, batch) -> (state, metrics)`, compiled ahead of
  time, with its state."""

  def __init__(self, name, step, state, batch):
    self.name, self.state, self.batch = name, state, jax.device_put(batch)
    self.params = sum(x.size for x in jax.tree_util.tree_leaves(state['params']))
    t0 = time.perf_counter()
    self.step = step.lower(state, self.batch).compile()
    self.compile_s = time.perf_counter() - t0
    self.block_ms, self.losses = [], []

  def run(self, n):
    for _ in range(n):
      self.state, metrics = self.step(self.state, self.batch)
      self.losses.append(metrics['loss'])
    jax.block_until_ready((self.state, self.losses))


MATRIX_FLAGS = ('amx_bf16', 'amx_tile', 'amx_int8', 'avx512_bf16', 'avx512_fp16', 'avx512_vnni')


def cpu_model_and_matrix_units() -> tuple:
  """(CPU model name, the bf16/int8 matrix-unit flags /proc/cpuinfo lists, or 'none')."""
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      for line in f:
        key, _, value = line.partition(':')
        if key.strip() == 'model name':
          model = value.strip()
        elif key.strip() == 'flags':
          flags = set(value.split())
  except OSError:  # not Linux: no flags to read
    pass
  return model, ' '.join(f for f in MATRIX_FLAGS if f in flags) or 'none'


def machine(extra: str = '') -> str:
  """One line naming the machine, its matrix units, its load now and the JAX stack (say the
  load: a busy machine's ratios are not a quiet one's)."""
  import flax  # pylint: disable=import-outside-toplevel  # only to name its version
  model, units = cpu_model_and_matrix_units()
  return (f'machine: {model}, {os.cpu_count()} CPUs '
          f'(affinity {len(os.sched_getaffinity(0))}), matrix units: {units}, '
          f'load {os.getloadavg()[0]:.2f}; '
          f'jax {jax.__version__} ({jax.default_backend()}, {jax.devices()[0].device_kind}), '
          f'flax {flax.__version__}{extra}')


def warm_up(runners, steps: int) -> None:
  """`steps` single steps per runner, interleaved like the timed blocks."""
  for _ in range(steps):
    for r in runners:
      r.run(1)


def alternate(runners, steps: int, block: int, note=lambda runners: '') -> None:
  """Timed blocks of <= `block` steps, alternating between the runners, until each ran
  `steps`; prints each block (and `note(runners)` after it)."""
  done = 0
  while done < steps:
    n = min(block, steps - done)
    for r in runners:
      r.timed(n)
    done += n
    print(f'  block {len(runners[0].block_ms)}: ' +
          ', '.join(f'{r.name} {r.block_ms[-1]:.0f} ms/step' for r in runners) +
          note(runners), flush=True)


def check_finite(runners) -> None:
  """A non-finite last loss means a broken step: its time means nothing."""
  for r in runners:
    loss = float(r.losses[-1])
    if not np.isfinite(loss):
      raise FloatingPointError(f'{r.name}: non-finite loss {loss}')
