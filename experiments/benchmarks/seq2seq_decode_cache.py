r"""Seq2Seq greedy translation speed: cached decoder steps vs recomputing the prefix.

Same model (plm's Seq2Seq, BERT-Mini-shaped encoder and decoder by default,
random init, fp32, dropout off), same padded sources, greedy search with no EOS
(eos_id=-1, which argmax never picks), so every row generates --new_tokens
tokens. Both decoders are plm.decode.seq2seq.make_translator (one jitted call:
encode the sources, then plm.decode.greedy's loop):

  cached    cached_step_fn: one target token per step through the decoder's
            self-attention KV cache; the cross-attention keys/values of the
            encoder output are computed once by the prefill and only read.
  uncached  uncached_step_fn, the reference: each step runs the decoder over
            the whole [batch, new_tokens] target buffer (static shapes, causal
            mask over the filled prefix) and re-projects the encoder output.

Compile time is reported apart; timed runs alternate between the two and the
median is reported. The script fails unless both give identical tokens.

  python experiments/benchmarks/seq2seq_decode_cache.py  # ~1 min on 2 busy cores
  python experiments/benchmarks/seq2seq_decode_cache.py --size=base --batch=4 --repeats=2
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
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from plm import masks, models
from plm.decode import seq2seq as sd
from plm.models import sizes
# pylint: enable=g-import-not-at-top,wrong-import-position

PAD, BOS, EOS = 0, 2, 3
NO_EOS = -1  # an id argmax never returns: no row stops early


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--new_tokens', type=int, default=64, help='generated tokens per row')
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--src_len', type=int, default=64, help='source row length (padded)')
  p.add_argument('--vocab', type=int, default=8000)
  p.add_argument('--size', default='mini', choices=sorted(sizes.SIZES),
                 help='plm/models/sizes.py; encoder and decoder both get its layers')
  p.add_argument('--languages', type=int, default=2,
                 help='language embeddings (source language 0, target 1); 0 = none')
  p.add_argument('--repeats', type=int, default=5, help='timed runs per decoder')
  return p.parse_args(argv)


def make_sources(args):
  """[bos] ids [eos] then padding, lengths between half and all of the row."""
  rng = np.random.RandomState(0)
  n = rng.randint(args.src_len // 2, args.src_len + 1, args.batch)
  n[0] = args.src_len
  valid = np.arange(args.src_len)[None, :] < n[:, None]
  ids = rng.randint(5, args.vocab, (args.batch, args.src_len))
  ids[:, 0] = BOS
  ids[np.arange(args.batch), n - 1] = EOS
  return np.where(valid, ids, PAD).astype(np.int32), valid


def init_params(model, args, src, valid):
  tgt = jnp.zeros((args.batch, args.new_tokens), jnp.int32)
  tgt_valid = jnp.ones(tgt.shape, bool)
  langs = lambda x, lang: jnp.full(x.shape, lang, jnp.int32) if args.languages else None
  inputs = dict(src_tokens=jnp.asarray(src), src_positions=jnp.zeros(src.shape, jnp.int32),
                src_mask=masks.padding_mask(valid), tgt_tokens=tgt,
                tgt_positions=jnp.zeros(tgt.shape, jnp.int32),
                tgt_mask=masks.causal_mask(tgt_valid),
                cross_mask=masks.cross_attention_mask(tgt_valid, valid),
                src_langs=langs(src, 0), tgt_langs=langs(tgt, 1))
  return jax.jit(lambda rng: nn.unbox(model.init(rng, **inputs)['params']))(
      jax.random.PRNGKey(0))


def main(argv=None):
  args = parse_args(argv)
  shape = sizes.get(args.size)
  print(f'machine: {platform.machine()} {os.cpu_count()} CPUs '
        f'(affinity {len(os.sched_getaffinity(0))}), load {os.getloadavg()[0]:.2f}; '
        f'jax {jax.__version__} ({jax.default_backend()})')
  print(f'shape: size={args.size} {shape} (encoder and decoder) vocab={args.vocab} '
        f'languages={args.languages} batch={args.batch} src_len={args.src_len} '
        f'new_tokens={args.new_tokens} fp32, greedy, no EOS')
  mc = models.config('seq2seq')
  mc.update(size=args.size, **shape, max_len=max(args.src_len, args.new_tokens),
            num_languages=args.languages, dropout=0.0, attention_dropout=0.0)
  model = models.build(mc, args.vocab)
  src, valid = make_sources(args)
  params = init_params(model, args, src, valid)
  src = jnp.asarray(src)
  src_langs = jnp.zeros((args.batch,), jnp.int32) if args.languages else None
  tgt_lang = 1 if args.languages else None

  runs = {}
  for name, cached in (('cached', True), ('uncached', False)):
    translate = sd.make_translator(
        model, batch_size=args.batch, src_len=args.src_len, max_len=args.new_tokens,
        bos_id=BOS, eos_id=NO_EOS, pad_id=PAD, beam_size=1, length_penalty=1.0,
        no_repeat_ngram=0, cached=cached)
    start = time.perf_counter()
    compiled = translate.lower(params, src, src_langs, tgt_lang).compile()
    print(f'{name}: compile {time.perf_counter() - start:.1f} s', flush=True)
    runs[name] = lambda compiled=compiled: compiled(params, src, src_langs, tgt_lang)

  outputs = {name: np.asarray(run()) for name, run in runs.items()}  # warm-up
  times = {name: [] for name in runs}
  for _ in range(args.repeats):
    for name, run in runs.items():  # interleaved, so load changes hit both alike
      start = time.perf_counter()
      jax.block_until_ready(run())
      times[name].append(time.perf_counter() - start)
  same = np.array_equal(outputs['cached'], outputs['uncached'])
  out = outputs['cached']
  print(f'identical tokens: {same}; output {out.shape}, {len(np.unique(out))} distinct ids, '
        f'{len({tuple(r) for r in out})} distinct rows; load now {os.getloadavg()[0]:.2f}\n')
  if not same:
    sys.exit('cached and uncached decoding disagree')

  base = statistics.median(times['cached'])
  print(f'median of {args.repeats} runs; one batch = encode {args.batch} sources + '
        f'{args.new_tokens} greedy steps')
  print('| decoder | s / batch | ms / step | tokens/s | per-run s (all) | time vs cached |')
  print('|---|---|---|---|---|---|')
  for name, ts in times.items():
    med = statistics.median(ts)
    every = ', '.join(f'{x:.3f}' for x in ts)
    print(f'| {name} | {med:.3f} | {1e3 * med / args.new_tokens:.2f} | '
          f'{args.batch * args.new_tokens / med:,.0f} | {every} | {med / base:.1f}x |')
  print(f'\nuncached/cached: {statistics.median(times["uncached"]) / base:.2f}x')


if __name__ == '__main__':
  main()
