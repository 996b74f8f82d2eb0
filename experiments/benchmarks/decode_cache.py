r"""Greedy decoding speed: KV-cached steps vs recomputing the prefix every step.

Same model (BERT-Mini-like EncoderLM, random init, fp32), same first tokens, no
EOS so every run generates --new_tokens tokens per row. Three decoders:

  cached     plm.decode.lm.lm_step_fn: one token per step through the KV cache.
  recompute  plm.decode.lm.uncached_step_fn: each step runs the model over the
             whole [batch, new_tokens] buffer (static shapes, one jitted loop).
  bucketed   recompute over only the smallest multiple of --bucket slots that
             holds the prefix (a host loop over a few compiled lengths): about
             half recompute's work, the fairer no-cache baseline.

cached and recompute are each one jitted greedy() call; bucketed is one jitted
step per length. Compile time is reported apart; timed runs alternate between
the decoders and the median is reported.

  python experiments/benchmarks/decode_cache.py  # ~1 min on 2 busy cores
"""
import argparse
import os
import platform
import statistics
import sys
import time

# The repo root, so `plm` imports without installing.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np

from plm import masks
from plm.decode import lm, search
from plm.models import sizes
from plm.models.encoder import Encoder, EncoderLM
# pylint: enable=g-import-not-at-top,wrong-import-position


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--new_tokens', type=int, default=64, help='generated tokens per row')
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--vocab', type=int, default=8000)
  p.add_argument('--size', default='mini', choices=sorted(sizes.SIZES))
  p.add_argument('--repeats', type=int, default=3, help='timed runs per decoder')
  p.add_argument('--bucket', type=int, default=16, help="bucketed decoder's length step")
  return p.parse_args(argv)


def make_decoders(model, args):
  """{name: (compile() -> seconds, run() -> tokens [B, T])}."""
  t = args.new_tokens

  def searcher(make):
    def fn(params, first):
      step, state = make(model, params, batch_size=first.shape[0], max_len=t)
      return search.greedy(step, state, first, max_len=t, eos_id=-1)
    return jax.jit(fn)

  def bucketed_step(params, buf, i):
    """Next token after slot i, attending over buf's slots 0..i only."""
    length = buf.shape[1]
    valid = jnp.broadcast_to(jnp.arange(length) <= i, buf.shape)
    pos = jnp.broadcast_to(jnp.arange(length), buf.shape)
    logits = model.apply({'params': params}, buf, pos, masks.causal_mask(valid),
                         predict_positions=jnp.full((buf.shape[0], 1), i))
    return jnp.argmax(logits[:, 0], -1).astype(jnp.int32)

  bucketed_step = jax.jit(bucketed_step)
  lengths = sorted({min(-(-(i + 1) // args.bucket) * args.bucket, t) for i in range(t)})

  def run_bucketed(params, first):
    buf = jnp.zeros((first.shape[0], t), jnp.int32).at[:, 0].set(first)
    out = []
    for i in range(t):
      length = min(-(-(i + 1) // args.bucket) * args.bucket, t)
      token = bucketed_step(params, buf[:, :length], jnp.int32(i))
      out.append(token)
      if i + 1 < t:
        buf = buf.at[:, i + 1].set(token)
    return jnp.stack(out, 1)

  def compile_bucketed(params, first):
    buf = jnp.zeros((first.shape[0], t), jnp.int32)
    for length in lengths:
      bucketed_step.lower(params, buf[:, :length], jnp.int32(0)).compile()

  return {'cached': searcher(lm.lm_step_fn),
          'recompute': searcher(lm.uncached_step_fn),
          'bucketed': (compile_bucketed, run_bucketed)}


def main(argv=None):
  args = parse_args(argv)
  shape = sizes.get(args.size)
  print(f'machine: {platform.machine()} {os.cpu_count()} CPUs '
        f'(affinity {len(os.sched_getaffinity(0))}), load {os.getloadavg()[0]:.2f}; '
        f'jax {jax.__version__} ({jax.default_backend()})')
  print(f'shape: size={args.size} {shape} vocab={args.vocab} batch={args.batch} '
        f'new_tokens={args.new_tokens} fp32, greedy, no EOS')
  model = EncoderLM(Encoder(vocab_size=args.vocab, **shape, dropout=0.0, attention_dropout=0.0))
  dummy = jnp.zeros((1, args.new_tokens), jnp.int32)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), dummy, dummy, None)['params']
  first = jnp.asarray(np.random.RandomState(0).randint(5, args.vocab, args.batch), jnp.int32)

  runs = {}
  for name, dec in make_decoders(model, args).items():
    start = time.perf_counter()
    if isinstance(dec, tuple):
      dec[0](params, first)
      run = dec[1]
    else:
      run = dec.lower(params, first).compile()
    print(f'{name}: compile {time.perf_counter() - start:.1f} s')
    runs[name] = run

  times = {name: [] for name in runs}
  outputs = {name: np.asarray(run(params, first)) for name, run in runs.items()}  # warm-up
  for _ in range(args.repeats):
    for name, run in runs.items():  # interleaved, so load changes hit all alike
      start = time.perf_counter()
      jax.block_until_ready(run(params, first))
      times[name].append(time.perf_counter() - start)
  same = all(np.array_equal(outputs['cached'], out) for out in outputs.values())
  print(f'all decoders give the same tokens: {same}; load now {os.getloadavg()[0]:.2f}\n')

  base = statistics.median(times['cached'])
  print(f'median of {args.repeats} runs; one step = one token for each of {args.batch} rows')
  print('| decoder | ms / step | tokens/s | per-run ms (all) | time vs cached |')
  print('|---|---|---|---|---|')
  for name, ts in times.items():
    med = statistics.median(ts)
    every = ', '.join(f'{1e3 * x:.0f}' for x in ts)
    print(f'| {name} | {1e3 * med / args.new_tokens:.2f} | '
          f'{args.batch * args.new_tokens / med:,.0f} | {every} | {med / base:.1f}x |')
  if not same:
    sys.exit('decoders disagree')


if __name__ == '__main__':
  main()
