r"""Encoder-decoder train-step throughput: plm's Seq2Seq (translation objective) vs
transformers' FlaxBartForConditionalGeneration of the same shape.

Both get the same shape (encoder and decoder layers, hidden, heads, ff, vocab),
the same batch of pair rows (token ids, source and target lengths, padding),
the same loss (cross-entropy over the target tokens `tgt [eos]`, teacher forcing
on `[bos] tgt`, averaged over the real target tokens), the same optimizer
(plm.train.make_optimizer: optax AdamW with global-norm clipping), fp32 and
dropout 0.1 on hidden states and attention probabilities. plm runs its own
pieces: models.build(models.config('seq2seq')), plm.objectives.translation
.objective() and plm.train.make_steps; HF runs its model under a plain loss.
Both steps are jitted with the train state donated and compiled ahead of time;
timing blocks of --block steps alternate between the two, and the median block
is reported.

  python experiments/benchmarks/seq2seq_throughput.py  # ~2 min on 2 busy cores
  python experiments/benchmarks/seq2seq_throughput.py --size=small
  python experiments/benchmarks/seq2seq_throughput.py --size=base --batch=8 --steps=4 \
      --warmup=1 --block=2

What differs, because it is how each model is written (the parameter counts
are made equal, and checked, before timing):

- Positions. BART has a learned position table in the encoder and another in
  the decoder, each max_position_embeddings + 2 rows (its position ids are
  offset by 2); plm's decoder shares the encoder's one table (model.max_len
  rows). BART's max_position_embeddings M and plm's max_len are chosen so the
  counts match: plm max_len = 2M + 1 - hidden.
- Output head. plm's is BERT/XLM's MlmHead: Dense(H, H) -> GELU -> LayerNorm ->
  tied embedding + bias (H^2 + 3H more parameters, a [B, Lt, H] x [H, H] matmul
  more per step). BART's is the tied embedding + final_logits_bias, which HF
  keeps out of the gradient (stop_gradient); plm trains its bias.
- Embeddings. Both have a LayerNorm after the embeddings (BART's
  layernorm_embedding, plm's embed_ln) in the encoder and the decoder; both are
  post-LN. LayerNorm epsilon is 1e-5 in both (BART's value).
- Dropout. HF's Flax attention draws one attention-dropout mask per step,
  shared across the batch and heads (broadcast_dropout=True); plm draws one per
  example and head, as PyTorch does. BART's activation_dropout (inside the
  feed-forward) is set to 0: plm has none.
- Masks. plm's objective builds its masks inside the step ([B, 1, Lt, Lt]
  causal, [B, 1, Lt, Ls] cross, [B, 1, Ls, Ls] padding) and also computes its
  logged metrics (accuracy, gradient norm); HF builds its causal mask inside
  the model from [B, L] padding masks.
"""
import argparse
import functools
import math
import os
import statistics
import sys

# The repo root, so `plm` imports without installing.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import transformers

from plm import configlib, models, partitioning, train
from plm.models import sizes
from plm.objectives import base, translation
from side_by_side import Runner, alternate, check_finite, machine, warm_up
# pylint: enable=g-import-not-at-top,wrong-import-position

PAD, BOS, EOS = 0, 2, 3  # plm's special ids; 0..4 are never drawn as content
LN_EPS = 1e-5  # BART's LayerNorm epsilon (fixed in its code)
PARAM_TOLERANCE = 1e-3  # relative difference of the parameter counts allowed


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--steps', type=int, default=12, help='timed steps per model')
  p.add_argument('--warmup', type=int, default=2, help='untimed steps after compiling')
  p.add_argument('--block', type=int, default=2, help='steps per timing block (interleaved)')
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--src_len', type=int, default=64, help='source row length (tokens)')
  p.add_argument('--tgt_len', type=int, default=64, help='target row length ([bos] .. [eos])')
  p.add_argument('--vocab', type=int, default=16000)
  p.add_argument('--size', default='mini', choices=sorted(sizes.SIZES),
                 help='plm/models/sizes.py; encoder and decoder both get its layers')
  return p.parse_args(argv)


def position_sizes(hidden: int, longest: int) -> tuple[int, int]:
  """(BART's max_position_embeddings M, plm's max_len P) with equal parameter counts:
  2 (M + 2) H = P H + (H^2 + 3H), i.e. P = 2M + 1 - H, and M, P >= the longest row."""
  m = max(longest, math.ceil((longest + hidden - 1) / 2))
  return m, 2 * m + 1 - hidden


def make_batch(args):
  """Pair rows as plm/data/sentences.py builds them: [bos] ids [eos] then padding, lengths
  drawn between half and all of the row (throughput does not depend on the ids)."""
  rng = np.random.RandomState(0)
  batch = {}
  for side, length in (('src', args.src_len), ('tgt', args.tgt_len)):
    n = rng.randint(length // 2, length + 1, args.batch)  # real tokens, bos and eos included
    n[0] = length  # one full row
    valid = np.arange(length)[None, :] < n[:, None]
    ids = rng.randint(5, args.vocab, (args.batch, length))
    ids[:, 0] = BOS
    ids[np.arange(args.batch), n - 1] = EOS
    batch[f'{side}_tokens'] = np.where(valid, ids, PAD).astype(np.int32)
    batch[f'{side}_segment_ids'] = valid.astype(np.int32)
    batch[f'{side}_positions'] = np.where(valid, np.arange(length)[None, :], 0).astype(np.int32)
  return batch


def optim_config():
  c = configlib.base().optim
  c.lr, c.warmup_steps, c.total_steps = 1e-4, 10, 10_000
  c.b1, c.b2, c.weight_decay = 0.9, 0.98, 0.01
  return c


def setup_plm(args, shape, max_len, tx, batch):
  """(jitted train step (state, batch), initial state) for plm's Seq2Seq."""
  mc = models.config('seq2seq')
  mc.update(size=args.size, **shape, max_len=max_len, num_languages=0, dropout=0.1,
            attention_dropout=0.1, ln_eps=LN_EPS)
  model = models.build(mc, args.vocab)
  objective = translation.objective()

  @jax.jit
  def init(rng, batch):
    inputs, _ = objective.prepare(rng, batch, {})
    params = nn.unbox(model.init(rng, **inputs)['params'])
    return dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
                rng=jax.random.PRNGKey(1))

  state = init(jax.random.PRNGKey(0), batch)
  train_step, _ = train.make_steps(model, objective, tx, accum_steps=1,
                                   weights=base.loss_weights(objective, None))
  return jax.jit(lambda state, batch: train_step(state, {}, batch), donate_argnums=0), state


def hf_inputs(batch):
  """HF's batch: the decoder inputs, targets and weights plm's translation objective makes."""
  inputs, ids, weights = jax.jit(translation.make())(jax.random.PRNGKey(0), batch)
  dec_valid = np.asarray(weights) > 0
  return dict(input_ids=batch['src_tokens'],
              attention_mask=(batch['src_segment_ids'] > 0).astype(np.int32),
              position_ids=batch['src_positions'],
              decoder_input_ids=np.asarray(inputs['tgt_tokens']),
              decoder_attention_mask=dec_valid.astype(np.int32),
              decoder_position_ids=np.asarray(inputs['tgt_positions']),
              labels=np.asarray(ids), weights=np.asarray(weights))


def setup_hf(args, shape, max_positions, tx, hf_batch):
  """(jitted train step, initial state) for transformers' FlaxBartForConditionalGeneration."""
  config = transformers.BartConfig(
      vocab_size=args.vocab, d_model=shape['hidden'], encoder_layers=shape['layers'],
      decoder_layers=shape['layers'], encoder_attention_heads=shape['heads'],
      decoder_attention_heads=shape['heads'], encoder_ffn_dim=shape['ff'],
      decoder_ffn_dim=shape['ff'], activation_function='gelu', dropout=0.1,
      attention_dropout=0.1, activation_dropout=0.0, encoder_layerdrop=0.0,
      decoder_layerdrop=0.0, max_position_embeddings=max_positions, init_std=0.02,
      scale_embedding=False, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
      decoder_start_token_id=BOS, forced_eos_token_id=None, tie_word_embeddings=True)
  # _do_init=False + jitted init: HF's eager init compiles op by op.
  model = transformers.FlaxBartForConditionalGeneration(config, seed=0, _do_init=False)
  init = jax.jit(functools.partial(model.init_weights,
                                   input_shape=hf_batch['input_ids'].shape))
  params = flax.core.unfreeze(init(jax.random.PRNGKey(0)))

  @jax.jit
  def init_state(params):
    return dict(params=params, opt_state=tx.init(params), step=jnp.array(0, jnp.int32),
                rng=jax.random.PRNGKey(1))

  def train_step(state, b):
    rng = jax.random.fold_in(state['rng'], state['step'])

    def loss_fn(params):
      logits = model(b['input_ids'], b['attention_mask'], b['decoder_input_ids'],
                     b['decoder_attention_mask'], b['position_ids'], b['decoder_position_ids'],
                     params=params, dropout_rng=rng, train=True)[0]
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, b['labels'])
      return jnp.sum(losses * b['weights']) / jnp.maximum(jnp.sum(b['weights']), 1.0)

    loss, grads = jax.value_and_grad(loss_fn)(state['params'])
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    new_state = dict(params=optax.apply_updates(state['params'], updates),
                     opt_state=opt_state, step=state['step'] + 1, rng=state['rng'])
    return new_state, dict(loss=loss)

  return jax.jit(train_step, donate_argnums=0), init_state(params)


def main(argv=None):
  args = parse_args(argv)
  shape = sizes.get(args.size)
  max_positions, max_len = position_sizes(shape['hidden'], max(args.src_len, args.tgt_len))
  print(machine(f', transformers {transformers.__version__}'))
  print(f'shape: size={args.size} {shape} (encoder and decoder) vocab={args.vocab} '
        f'batch={args.batch} src_len={args.src_len} tgt_len={args.tgt_len} fp32, dropout 0.1; '
        f'plm max_len={max_len}, BART max_position_embeddings={max_positions}')

  batch = make_batch(args)
  hf_batch = hf_inputs(batch)
  tx = train.make_optimizer(optim_config())  # the same optimizer for both
  # A 1-device mesh + rules, as plm.train runs the model (logical constraints resolve).
  mesh = partitioning.make_mesh({'data': -1})
  with jax.set_mesh(mesh), nn.logical_axis_rules(partitioning.DEFAULT_RULES):
    runners = [Runner('plm', *setup_plm(args, shape, max_len, tx, batch), batch)]
  runners.append(Runner('HF BART', *setup_hf(args, shape, max_positions, tx, hf_batch),
                        hf_batch))

  plm_n, hf_n = (r.params for r in runners)
  print(f'parameters: plm {plm_n:,}, HF BART {hf_n:,} '
        f'(difference {abs(plm_n - hf_n) / hf_n:.4%})')
  if abs(plm_n - hf_n) > PARAM_TOLERANCE * hf_n:
    sys.exit(f'parameter counts differ by more than {PARAM_TOLERANCE:.1%}: not comparable')
  tokens = int(batch['tgt_segment_ids'][:, 1:].sum())
  print(f'target tokens per step (loss weight): {tokens:,} of {args.batch * (args.tgt_len - 1):,}'
        f' slots; source tokens {int(batch["src_segment_ids"].sum()):,}')
  warm_up(runners, args.warmup)  # interleaved, like the timed blocks
  for r in runners:
    print(f'{r.name}: compile {r.compile_s:.1f} s; first-step loss {float(r.losses[0]):.4f} '
          f'(ln V = {np.log(args.vocab):.4f})', flush=True)
  alternate(runners, args.steps, args.block,
            lambda rs: f', plm/HF {rs[1].block_ms[-1] / rs[0].block_ms[-1]:.2f}x')
  check_finite(runners)
  ratios = [h / p for p, h in zip(runners[0].block_ms, runners[1].block_ms)]
  print(f'\nmedian over {len(ratios)} blocks of <= {args.block} steps ({args.steps} timed '
        f'steps each, {args.warmup} warm-up); plm/HF per block {min(ratios):.2f}x .. '
        f'{max(ratios):.2f}x; load now {os.getloadavg()[0]:.2f}\n')
  hf_ms = statistics.median(runners[1].block_ms)
  print('| implementation | step ms | steps/s | target tokens/s | plm/HF |')
  print('|---|---|---|---|---|')
  for r in runners:
    ms = statistics.median(r.block_ms)
    print(f'| {r.name} | {ms:.1f} | {1e3 / ms:.3f} | {tokens / (ms / 1e3):,.0f} | '
          f'{hf_ms / ms:.2f}x |')


if __name__ == '__main__':
  main()
