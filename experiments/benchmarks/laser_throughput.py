r"""LASER throughput: plm's Laser vs a PyTorch model of the same shape built from
torch.nn.LSTM, side by side in one run. Two numbers:

- train: target tokens/s of a whole train step. plm runs its own pieces:
  models.build(models.config('laser')), plm.objectives.translation.objective() and
  plm.train.make_steps (jitted, state donated, compiled ahead of time). PyTorch runs
  eagerly: embedding -> bidirectional nn.LSTM (num_layers, packed by length, so
  padding enters no recurrence) -> max-pool over the real tokens -> an nn.LSTM
  decoder fed [previous token embedding; sentence vector; language embedding], its
  initial (h, c) = tanh(Linear(sentence)) -> Linear to the vocabulary ->
  cross-entropy averaged over the real target tokens -> clip_grad_norm_ -> AdamW.
- embed: sentences/s of plm's embed path (plm.evaluate.embedding.make_embedder +
  embed_rows: length-bucketed batches, longest first) vs the PyTorch encoder's
  forward under torch.no_grad on the same batches (packed, max-pooled).

  nice python experiments/benchmarks/laser_throughput.py  # plm's CPU config; ~80 s, 2 cores
  # the paper's shape (179M parameters); on 2 CPU cores only as a smoke test (~5 min):
  nice python experiments/benchmarks/laser_throughput.py --size=paper --batch=2 --min_len=8 \
      --max_len=16 --steps=1 --warmup=1 --block=1 --embed_rows=4 --torch_threads=1

Held equal: the shape (embedding, layers, hidden, decoder hidden, vocab, language
embeddings; the parameter counts are checked equal before timing), the batch (pair
rows `[bos] ids [eos]` right-padded, lengths drawn from --min_len..--max_len), the
decoder inputs, targets and weights (the ones plm's translation objective makes),
the shared source/target token table, dropout (plm's places: token embeddings,
between BiLSTM layers, decoder inputs, decoder states), fp32, the optimizer
(AdamW with plm.train.make_optimizer's b1, b2, eps and weight decay on matrices
only, global-norm clip 1.0; PyTorch's learning rate is constant, which does not
change the speed). Timing blocks of --block steps alternate between the implementations,
and the median block is reported, with the process CPU time per step beside it (the
machine is shared: CPU time moves less with the load than wall time).

PyTorch is timed twice side by side (--torch_threads): with torch.set_num_threads at the
CPU count and with 1 thread, OMP_WAIT_POLICY=PASSIVE unless set; the ratios are against
the faster of the two. XLA uses every CPU.

What differs, because it is how each is written: nn.LSTM has two biases per gate
(b_ih and b_hh), plm one; PyTorch's b_hh is frozen at 0 so both train the same
parameters. plm's step also computes its logged metrics (accuracy, gradient norm).
"""
import argparse
import os
import statistics
import sys
import time

# PyTorch's OpenMP workers spin while waiting; on a CPU shared with other jobs two spinning
# threads starve each other (4-33x slower steps measured here), so they sleep instead.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

# The repo root, so `plm` imports without installing; this folder for the shared helpers.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import torch

from plm import models, partitioning, train
from plm.evaluate import embedding
from plm.objectives import base, translation
from seq2seq_throughput import optim_config
from side_by_side import Runner, Timed, check_finite, machine, warm_up
# pylint: enable=g-import-not-at-top,wrong-import-position

PAD, BOS, EOS = 0, 2, 3  # plm's special ids; 0..4 are never drawn as content
# --size: model.* fields and vocabulary. default = models.config('laser') as it is.
SIZES = {'default': dict(vocab=8000),
         'paper': dict(embed_dim=320, layers=5, hidden=512, decoder_hidden=2048, lang_dim=32,
                       vocab=50000)}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--size', default='default', choices=sorted(SIZES))
  p.add_argument('--steps', type=int, default=8, help='timed train steps per model')
  p.add_argument('--warmup', type=int, default=2, help='untimed steps after compiling (>= 1)')
  p.add_argument('--block', type=int, default=2, help='steps per timing block (interleaved)')
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--min_len', type=int, default=10, help='shortest row ([bos] .. [eos])')
  p.add_argument('--max_len', type=int, default=64, help='row width = the longest row')
  p.add_argument('--languages', type=int, default=2, help='target-language embeddings')
  p.add_argument('--embed_rows', type=int, default=2048, help='sentences per embed pass')
  p.add_argument('--embed_repeats', type=int, default=3, help='timed embed passes each')
  p.add_argument('--torch_threads', default=f'{os.cpu_count()},1',
                 help='PyTorch runs to time side by side, by torch.set_num_threads')
  args = p.parse_args(argv)
  if args.warmup < 1:
    p.error(f'--warmup={args.warmup}: use at least 1 (the first step is not timed)')
  if not 2 <= args.min_len <= args.max_len:
    p.error(f'--min_len={args.min_len}, --max_len={args.max_len}: use 2 <= min_len <= max_len '
            '(a row holds at least [bos] [eos])')
  return args


def model_config(args) -> ml_collections.ConfigDict:
  mc = models.config('laser')
  mc.update({k: v for k, v in SIZES[args.size].items() if k != 'vocab'})
  mc.num_languages = args.languages
  return mc


def lengths(rng, n, args):
  """Row lengths drawn from min_len..max_len (bos and eos included), one of max_len."""
  out = rng.randint(args.min_len, args.max_len + 1, n)
  out[0] = args.max_len
  return out


def make_batch(args, vocab):
  """Pair rows as plm/data/sentences.py lays them out: [bos] ids [eos] then padding."""
  rng = np.random.RandomState(0)
  batch = {}
  for side in ('src', 'tgt'):
    n = lengths(rng, args.batch, args)
    valid = np.arange(args.max_len)[None, :] < n[:, None]
    ids = rng.randint(5, vocab, (args.batch, args.max_len))
    ids[:, 0] = BOS
    ids[np.arange(args.batch), n - 1] = EOS
    batch[f'{side}_tokens'] = np.where(valid, ids, PAD).astype(np.int32)
    batch[f'{side}_segment_ids'] = valid.astype(np.int32)
    batch[f'{side}_positions'] = np.where(valid, np.arange(args.max_len), 0).astype(np.int32)
    batch[f'{side}_langs'] = np.full_like(batch[f'{side}_tokens'], side == 'tgt')
  return batch


def setup_plm(model, tx, batch):
  """(jitted train step (state, batch), initial state) for plm's Laser."""
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


class TorchLaser(torch.nn.Module):
  """LASER from nn.LSTM: the same shape and dropout places as plm/models/laser.py."""

  def __init__(self, mc, vocab):
    super().__init__()
    self.embed = torch.nn.Embedding(vocab, mc.embed_dim)  # shared by encoder and decoder
    self.encoder = torch.nn.LSTM(mc.embed_dim, mc.hidden, mc.layers, batch_first=True,
                                 bidirectional=True, dropout=mc.dropout if mc.layers > 1 else 0)
    self.language = torch.nn.Embedding(mc.num_languages, mc.lang_dim)
    self.init = torch.nn.Linear(2 * mc.hidden, 2 * mc.decoder_hidden)
    self.decoder = torch.nn.LSTM(mc.embed_dim + 2 * mc.hidden + mc.lang_dim, mc.decoder_hidden,
                                 batch_first=True)
    self.output = torch.nn.Linear(mc.decoder_hidden, vocab)
    self.drop = torch.nn.Dropout(mc.dropout)
    for name, p in [*self.encoder.named_parameters(), *self.decoder.named_parameters()]:
      if name.startswith('bias_hh'):  # plm's LSTM has one bias per gate: b_ih alone trains
        torch.nn.init.zeros_(p)
        p.requires_grad_(False)

  def sentence(self, tokens, lengths):
    """Max over the real tokens of the BiLSTM states: [B, 2H]. Rows are right-padded."""
    x = self.drop(self.embed(tokens))
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                     enforce_sorted=False)
    states, _ = torch.nn.utils.rnn.pad_packed_sequence(self.encoder(packed)[0], batch_first=True,
                                                       padding_value=-torch.inf)
    return states.max(dim=1).values

  def forward(self, src, src_lengths, tgt, tgt_langs):
    sentence = self.sentence(src, src_lengths)
    b, length = tgt.shape
    x = torch.cat([self.embed(tgt), sentence[:, None].expand(b, length, -1),
                   self.language(tgt_langs)], dim=-1)
    h0, c0 = torch.tanh(self.init(sentence)).chunk(2, dim=-1)
    out, _ = self.decoder(self.drop(x), (h0[None].contiguous(), c0[None].contiguous()))
    return self.output(self.drop(out))


class TorchRunner(Timed):
  """TorchLaser + AdamW (decay on matrices) + clip_grad_norm_, eager, fp32; Runner's API.
  Each run sets its torch.set_num_threads (a process-wide setting)."""

  def __init__(self, mc, vocab, optim, batch, threads):
    self.name, self.threads = f'PyTorch nn.LSTM, {threads} thread{"s" * (threads > 1)}', threads
    torch.manual_seed(0)
    t0 = time.perf_counter()
    self.model = TorchLaser(mc, vocab).train()
    trained = [p for p in self.model.parameters() if p.requires_grad]
    self.params = sum(p.numel() for p in trained)
    self.opt = torch.optim.AdamW(
        [{'params': [p for p in trained if p.ndim > 1], 'weight_decay': optim.weight_decay},
         {'params': [p for p in trained if p.ndim <= 1], 'weight_decay': 0.0}],
        lr=optim.lr, betas=(optim.b1, optim.b2), eps=optim.eps)
    self.trained, self.grad_clip = trained, optim.grad_clip
    # The decoder inputs, targets and weights plm's objective makes from the same rows.
    inputs, ids, weights = jax.jit(translation.make())(jax.random.PRNGKey(0), batch)
    as_torch = lambda x: torch.from_numpy(np.asarray(x).astype(np.int64))
    self.src = as_torch(batch['src_tokens'])
    self.src_lengths = (self.src != PAD).sum(-1)
    self.tgt, self.tgt_langs = as_torch(inputs['tgt_tokens']), as_torch(inputs['tgt_langs'])
    self.labels = as_torch(ids).flatten()
    self.weights = torch.from_numpy(np.array(weights)).flatten()
    self.compile_s = time.perf_counter() - t0  # model construction; eager has no compile
    self.block_ms, self.losses = [], []

  def run(self, n):
    torch.set_num_threads(self.threads)
    for _ in range(n):
      logits = self.model(self.src, self.src_lengths, self.tgt, self.tgt_langs)
      losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), self.labels,
                                                 reduction='none')
      loss = (losses * self.weights).sum() / self.weights.sum().clamp(min=1.0)
      loss.backward()
      torch.nn.utils.clip_grad_norm_(self.trained, self.grad_clip)
      self.opt.step()
      self.opt.zero_grad(set_to_none=True)
      self.losses.append(loss.detach())


def embed_rows(args, vocab):
  """Token rows [bos] ids [eos] for the embed pass (lengths as the train batch's)."""
  rng = np.random.RandomState(1)
  return [[BOS, *rng.randint(5, vocab, n - 2), EOS] for n in lengths(rng, args.embed_rows, args)]


def torch_embed(model, rows, batch_size):
  """Sentence vectors [N, 2H] in input order: embed_rows' batches (longest first, widths
  rounded up to LENGTH_BUCKET), the encoder forward under no_grad."""
  order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
  out = torch.zeros(len(rows), 2 * model.encoder.hidden_size)
  with torch.no_grad():
    for start in range(0, len(rows), batch_size):
      chunk = order[start:start + batch_size]
      width = -(-len(rows[chunk[0]]) // embedding.LENGTH_BUCKET) * embedding.LENGTH_BUCKET
      tokens = torch.zeros(len(chunk), width, dtype=torch.int64)
      for i, r in enumerate(chunk):
        tokens[i, :len(rows[r])] = torch.tensor(rows[r])
      out[chunk] = model.sentence(tokens, (tokens != PAD).sum(-1))
  return out


def time_embed(args, model, params, torch_runners):
  """{name: median seconds of a pass over the same rows}, the implementations alternating."""
  rows = embed_rows(args, model.vocab_size)
  config = ml_collections.ConfigDict(dict(embed=dict(layer=-1, pooling='max'),
                                          model=dict(num_languages=args.languages)))
  embedder = embedding.make_embedder(model, config, PAD)
  passes = {'plm': lambda: embedding.embed_rows(embedder, params, rows, PAD, args.batch)}
  for r in torch_runners:
    r.model.eval()
    passes[r.name] = lambda r=r: (torch.set_num_threads(r.threads),
                                  torch_embed(r.model, rows, args.batch).numpy())[1]
  t0 = time.perf_counter()
  first = {k: f() for k, f in passes.items()}  # compiles plm's few widths
  print(f'embed: first passes (plm compiles) {time.perf_counter() - t0:.1f} s; vectors '
        f'{", ".join(f"{k} {v.shape}" for k, v in first.items())}', flush=True)
  times = {k: [] for k in passes}
  for _ in range(args.embed_repeats):
    for k, f in passes.items():
      t0 = time.perf_counter()
      f()
      times[k].append(time.perf_counter() - t0)
  return len(rows), {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
  args = parse_args(argv)
  mc, vocab = model_config(args), SIZES[args.size]['vocab']
  print(machine(f', torch {torch.__version__} (torch.set_num_threads: {args.torch_threads}; '
                f'OMP_WAIT_POLICY={os.environ["OMP_WAIT_POLICY"]})'))
  print(f'shape: size={args.size} embed={mc.embed_dim} layers={mc.layers} hidden={mc.hidden} '
        f'decoder={mc.decoder_hidden} languages={mc.num_languages}x{mc.lang_dim} vocab={vocab} '
        f'batch={args.batch} lengths {args.min_len}..{args.max_len} fp32, '
        f'dropout {mc.dropout}')

  batch = make_batch(args, vocab)
  tx = train.make_optimizer(optim_config())
  model = models.build(mc, vocab)
  # A 1-device mesh + rules, as plm.train runs the model (logical constraints resolve).
  mesh = partitioning.make_mesh({'data': -1})
  with jax.set_mesh(mesh), nn.logical_axis_rules(partitioning.DEFAULT_RULES):
    runners = [Runner('plm', *setup_plm(model, tx, batch), batch)]
  runners += [TorchRunner(mc, vocab, optim_config(), batch, int(t))
              for t in args.torch_threads.split(',')]

  counts = [r.params for r in runners]
  print(f'parameters: plm {counts[0]:,}, PyTorch {counts[1]:,} (trained; b_hh frozen)')
  if len(set(counts)) > 1:
    sys.exit('parameter counts differ: not comparable')
  tokens = int(batch['tgt_segment_ids'][:, 1:].sum())
  print(f'target tokens per step (loss weight): {tokens:,}; source tokens '
        f'{int(batch["src_segment_ids"].sum()):,} of {batch["src_tokens"].size:,} slots')
  warm_up(runners, args.warmup)  # interleaved, like the timed blocks
  for r in runners:
    print(f'{r.name}: compile {r.compile_s:.1f} s; first-step loss {float(r.losses[0]):.4f} '
          f'(ln V = {np.log(vocab):.4f})', flush=True)

  # Alternate blocks so load changes during the run hit every implementation alike.
  done, cpu_ms = 0, {}
  while done < args.steps:
    n = min(args.block, args.steps - done)
    for r in runners:
      c0 = time.process_time()  # CPU seconds of this process, all threads
      r.timed(n)
      cpu_ms.setdefault(r.name, []).append((time.process_time() - c0) * 1e3 / n)
    done += n
    print(f'  block {len(runners[0].block_ms)}: ' +
          ', '.join(f'{r.name} {r.block_ms[-1]:.0f} ms/step ({cpu_ms[r.name][-1]:.0f} CPU)'
                    for r in runners), flush=True)
  check_finite(runners)

  n_rows, embed_s = time_embed(args, model, runners[0].state['params'], runners[1:])
  step_ms = {r.name: statistics.median(r.block_ms) for r in runners}
  best_ms = min(v for k, v in step_ms.items() if k != 'plm')  # the faster PyTorch setting
  best_s = min(v for k, v in embed_s.items() if k != 'plm')
  print(f'\ntrain: median over {len(runners[0].block_ms)} blocks of <= {args.block} steps '
        f'({args.steps} timed steps each, {args.warmup} warm-up); embed: median of '
        f'{args.embed_repeats} passes over {n_rows:,} sentences, batch {args.batch}; '
        f'ratios against the faster PyTorch setting; load now {os.getloadavg()[0]:.2f}\n')
  print('| implementation | train step ms | CPU ms/step | target tokens/s | train vs PyTorch | '
        'embed sentences/s | embed vs PyTorch |')
  print('|---|---|---|---|---|---|---|')
  for name, ms in step_ms.items():
    print(f'| {name} | {ms:.1f} | {statistics.median(cpu_ms[name]):.0f} | '
          f'{tokens / (ms / 1e3):,.0f} | {best_ms / ms:.2f}x | {n_rows / embed_s[name]:,.0f} | '
          f'{best_s / embed_s[name]:.2f}x |')


if __name__ == '__main__':
  main()
