"""The `compress` job: prune and/or int8-quantize a trained encoder_lm run, then test it.

  python -m plm.main --config=configs/tiny.py --config.job=compress \
      --config.compress.source=runs/student --config.compress.prune_heads=0.25 \
      --config.compress.prune_ff=0.25 --config.compress.quantize=int8 --workdir=runs/small

Pruning ranks heads and feed-forward units by a Taylor importance measured on
`compress.importance_batches` validation batches (plm/compress/prune.py) and removes
them; quantization turns the block kernels into int8 with per-channel scales
(plm/compress/quantize.py). The source's and the compressed model's test tables (same
masks) and sizes go to {workdir}/results.json; the compressed params are an orbax
checkpoint with a config.json, so `plm.load(workdir)` and every job read it as a run.
"""
import os

import jax

from plm import checkpoint, models, objectives, progress
from plm import workdir as workdir_lib
from plm.compress import prune, quantize
from plm.data import mixing
from plm.errors import UserError
from plm.evaluate import heldout


def importance(fn, params, rows, batches: int, batch_size: int, rng):
  """Mean Taylor scores (heads, ff) over the first `batches` batches of `rows`."""
  grad = jax.jit(jax.grad(lambda p, b, r: fn(p, b, r)['mlm/loss']))
  heads = ff = None
  for i, batch in enumerate(rows.iterate_once(batch_size)):
    if i == batches:
      break
    h, f = prune.taylor_scores(params, jax.device_get(grad(params, batch, rng)))
    heads = h if heads is None else [a + b for a, b in zip(heads, h)]
    ff = f if ff is None else [a + b for a, b in zip(ff, f)]
  if heads is None:
    raise UserError('the validation split has no rows to measure importance on')
  return heads, ff


def compress_job(config, workdir: str) -> dict:
  cc = config.compress
  if not cc.source:
    raise UserError('compress.source is empty; set it to the run directory to compress')
  prune.check_ratio('prune_heads', cc.prune_heads)
  prune.check_ratio('prune_ff', cc.prune_ff)
  if cc.quantize:
    quantize.check_backend(cc.quantize)
  if not (cc.quantize or cc.prune_heads or cc.prune_ff):
    raise UserError('nothing to do: set compress.quantize, compress.prune_heads or '
                    'compress.prune_ff')
  src = workdir_lib.load(cc.source)
  mc = src.config.model
  if mc.name != 'encoder_lm' or mc.get('quant') or mc.get('layer_heads'):
    raise UserError(f'compress.source={cc.source!r} is a {mc.name!r} run (quant='
                    f"{mc.get('quant')!r}, layer_heads={mc.get('layer_heads')}); compress "
                    'an uncompressed encoder_lm run')
  workdir = workdir_lib.workdir_path(workdir)
  out = src.config.copy_and_resolve_references()
  out.job, out.compress = 'compress', cc
  out.data.vocab_path = workdir_lib.vocab_path(src.config, os.path.abspath(cc.source))
  tokenizer = src.tokenizer
  counts = mixing.make_train_dataset(out.data, tokenizer).token_counts(tokenizer.vocab_size)
  objective = objectives.build(out, tokenizer, counts)
  if objective.heads != ('mlm',):
    raise UserError(f'compress tests with MLM; the source run trained {objective.heads}')
  test = heldout.language_sets(out.data, tokenizer, 'test')
  drop = not mc.get('num_languages', 0)
  rng, bs = jax.random.PRNGKey(out.seed + 2), out.train.eval_batch_size  # the loop's test masks
  results = dict(job='compress', source=os.path.abspath(cc.source), step=src.step,
                 source_test=heldout.params_table(src.model, objective, src.params, test, bs,
                                                  rng, drop),
                 source_bytes=quantize.nbytes(src.params))
  # a distilled student's projections to the teacher's width served training only
  params = {k: v for k, v in src.params.items() if k != 'kd_projection'}
  if cc.prune_heads or cc.prune_ff:
    lang = out.data.languages[0]
    heads, ff = importance(heldout.objective_sums(src.model, objective, drop), params,
                           mixing.monolingual_rows(out.data, tokenizer, 'validation', lang),
                           cc.importance_batches, bs, jax.random.PRNGKey(out.seed + 3))
    keep_h = prune.choose(heads, cc.prune_heads, 'prune_heads')
    keep_f = prune.choose(ff, cc.prune_ff, 'prune_ff')
    params = prune.prune_params(params, keep_h, keep_f)
    out.model.layer_heads = tuple(len(k) for k in keep_h)
    out.model.layer_ff = tuple(len(k) for k in keep_f)
  if cc.quantize:
    params = quantize.quantize_params(params, cc.quantize)
    out.model.quant = cc.quantize
  model = models.build(out.model, tokenizer.vocab_size)
  results.update(model=dict(layer_heads=out.model.layer_heads, layer_ff=out.model.layer_ff,
                            quant=out.model.quant),
                 test=heldout.params_table(model, objective, params, test, bs, rng, drop),
                 bytes=quantize.nbytes(params))
  print(f"compress: {results['source_bytes']} -> {results['bytes']} bytes of params; heads "
        f'{out.model.layer_heads or "all"}, ff {out.model.layer_ff or "all"}, quant '
        f"{out.model.quant or 'none'}\nsource (test):\n"
        f"{progress.format_table(results['source_test'])}\ncompressed (test):\n"
        f"{progress.format_table(results['test'])}", flush=True)
  mngr = checkpoint.manager(workdir)
  meta = dict(vocab=tokenizer.fingerprint, model=out.model.to_dict(), task='compress')
  checkpoint.save(mngr, src.step, {'params': params}, meta)
  checkpoint.wait(mngr, src.step)
  workdir_lib.write_config(out, workdir)
  workdir_lib.write_results(results, workdir)
  return results
