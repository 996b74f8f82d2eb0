r"""ERNIE-Tiny's speed-up, measured: teacher vs student, and float32 vs int8 and pruned,
side by side in one run, with the machine's load.

  nice python experiments/benchmarks/tiny_speedup.py          # configs/tiny.py's shapes
  nice python experiments/benchmarks/tiny_speedup.py --teacher=runs/teacher \
      --student=runs/student --pruned=runs/pruned   # trained runs (plm.load)
  python experiments/benchmarks/tiny_speedup.py --teacher_shape=12,768,12,3072 \
      --student_shape=3,1024,16,4096   # ERNIE-Tiny's own shapes (a GPU: see the README)

What is timed is what a fine-tuned model runs per input: the encoder's hidden states
over every position (jitted, float32), at batch 1 (median latency of --reps calls) and at
batch 32 (rows/s). Without run directories the models are configs/tiny.py's shapes at
random weights (speed does not depend on the weights); int8 is the same model with its
block kernels int8 (plm/compress/quantize.py), pruned drops --prune of the heads and
feed-forward units of every layer. Timings interleave the models round by round so the
background load hits all alike; the load average is printed before and after.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import tiny
from plm import masks, models
from plm import workdir as workdir_lib
from plm.compress import prune, quantize


def from_shape(shape: str, vocab: int, max_len: int):
  layers, hidden, heads, ff = (int(x) for x in shape.split(','))
  mc = models.config('encoder_lm')
  mc.update(dict(size='mini', layers=layers, hidden=hidden, heads=heads, ff=ff, max_len=max_len))
  return mc


def random_params(mc, vocab: int, seq_len: int = 64):
  tokens = jnp.ones((1, seq_len), jnp.int32)
  return nn.unbox(jax.jit(models.build(mc, vocab).init)(jax.random.PRNGKey(0), tokens, tokens,
                                                         None)['params'])


def variants(name, mc, params, vocab, prune_share):
  """{label: (model, encoder params)}: float32, int8, and with `prune_share` of every layer's
  heads and units removed (which ones does not change the speed)."""
  out = {f'{name} fp32': (models.build(mc, vocab).encoder, params['encoder'])}
  q = mc.copy_and_resolve_references()
  q.quant = 'int8'
  out[f'{name} int8'] = (models.build(q, vocab).encoder,
                         quantize.quantize_params(params)['encoder'])
  if prune_share:  # the first units of every layer kept: speed depends on counts only
    heads = [np.arange(max(1, round(mc.heads * (1 - prune_share))))] * mc.layers
    ff = [np.arange(max(1, round(mc.ff * (1 - prune_share))))] * mc.layers
    p = mc.copy_and_resolve_references()
    p.layer_heads, p.layer_ff = tuple(len(h) for h in heads), tuple(len(f) for f in ff)
    out[f'{name} pruned {prune_share:.0%}'] = (
        models.build(p, vocab).encoder, prune.prune_params(params, heads, ff)['encoder'])
  return out


def timer(model, params, batch: int, seq_len: int, vocab: int):
  tokens = jnp.asarray(np.random.RandomState(0).randint(5, vocab, (batch, seq_len)), jnp.int32)
  positions = jnp.broadcast_to(jnp.arange(seq_len), tokens.shape)
  mask = masks.padding_mask(tokens > 0)
  fn = jax.jit(lambda p: model.apply({'params': p}, tokens, positions, mask))
  fn(params).block_until_ready()

  def once():
    t = time.perf_counter()
    fn(params).block_until_ready()
    return time.perf_counter() - t
  return once


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--teacher', default='', help='teacher run directory (else configs/tiny.py)')
  ap.add_argument('--student', default='', help='student run directory')
  ap.add_argument('--teacher_shape', default='', help='layers,hidden,heads,ff at random weights')
  ap.add_argument('--student_shape', default='')
  ap.add_argument('--vocab', type=int, default=8000)
  ap.add_argument('--seq_len', type=int, default=64)
  ap.add_argument('--prune', type=float, default=0.5, help='share pruned (0 = no pruned arm)')
  ap.add_argument('--reps', type=int, default=30, help='timed calls per model and batch size')
  ap.add_argument('--rounds', type=int, default=3, help='interleaved rounds (median reported)')
  args = ap.parse_args()
  print(f'machine: {os.cpu_count()} CPUs, backend {jax.default_backend()} '
        f'({jax.devices()[0].device_kind}); load average before: {os.getloadavg()}', flush=True)
  arms, vocab = {}, args.vocab
  for name, path, shape, variant in (('teacher', args.teacher, args.teacher_shape, 'teacher'),
                                     ('student', args.student, args.student_shape, '')):
    if path:
      loaded = workdir_lib.load(path)
      mc, params, vocab = loaded.config.model, loaded.params, loaded.tokenizer.vocab_size
      params = {k: v for k, v in params.items() if k != 'kd_projection'}  # training only
    else:
      mc = from_shape(shape, vocab, args.seq_len) if shape else tiny.get_config(variant).model
      mc.max_len = max(args.seq_len, 64)
      params = random_params(mc, vocab, args.seq_len)
    print(f'{name}: layers {mc.layers}, hidden {mc.hidden}, heads {mc.heads}, ff {mc.ff}'
          + (f' ({path})' if path else ' (random weights)'), flush=True)
    arms.update(variants(name, mc, params, vocab, args.prune))
  timers = {(label, b): timer(model, p, b, args.seq_len, vocab)
            for label, (model, p) in arms.items() for b in (1, 32)}
  samples = {k: [] for k in timers}
  for _ in range(args.rounds):
    for key, once in timers.items():
      samples[key].append(statistics.median(once() for _ in range(args.reps)))
  med = {k: statistics.median(v) for k, v in samples.items()}
  base1, base32 = med[('teacher fp32', 1)], med[('teacher fp32', 32)]
  print(f'\nencoder forward, seq_len {args.seq_len}, float32 unless named; speed-up = teacher '
        'fp32 time / this time')
  print('| model | params (MB) | batch 1 latency (ms) | speed-up | batch 32 rows/s | speed-up |')
  print('|---|---|---|---|---|---|')
  for label, (_, p) in arms.items():
    l1, l32 = med[(label, 1)], med[(label, 32)]
    print(f'| {label} | {quantize.nbytes(p) / 1e6:.2f} | {l1 * 1e3:.2f} | {base1 / l1:.2f}x | '
          f'{32 / l32:.0f} | {base32 / l32:.2f}x |')
  s1, s32 = med[('student fp32', 1)], med[('student fp32', 32)]
  print(f'\nstudent vs teacher: {base1 / s1:.2f}x at batch 1, {base32 / s32:.2f}x at batch 32 '
        '(ERNIE-Tiny claims 4.3x)')
  for name in ('teacher', 'student'):
    f, q = med[(f'{name} fp32', 32)], med[(f'{name} int8', 32)]
    print(f'{name} int8 vs fp32 at batch 32: {f / q:.2f}x')
  print(f'load average after: {os.getloadavg()}')


if __name__ == '__main__':
  main()
