"""What a run prints and writes to TensorBoard: the progress line and held-out tables."""
import time

import jax
import numpy as np

from plm.errors import UserError


class NonFiniteLossError(UserError, FloatingPointError):
  """The loss or gradient norm left the floats; the message names the step and the fixes."""


def format_table(table: dict) -> str:
  """A held-out table {set: {head: metrics}} as Markdown, one row per set and head."""
  rows = ['| set | head | loss | perplexity | accuracy | unigram loss | unigram accuracy | '
          'predictions |', '|---|---|---|---|---|---|---|---|']
  for name, heads in table.items():
    for head, m in heads.items():
      rows.append(f"| {name} | {head} | {m['loss']:.3f} | {m['ppl']:.1f} | {m['accuracy']:.3f} | "
                  f"{m.get('unigram_loss', float('nan')):.3f} | "
                  f"{m.get('unigram_accuracy', float('nan')):.3f} | {m['predictions']} |")
  return '\n'.join(rows)


def table_from_sums(sums: dict) -> dict:
  """{head: metrics} from a held-out pass's summed '<head>/<sum>' values."""
  heads = {}
  for key in sums:
    head, what = key.rsplit('/', 1)
    if what == 'weight':
      w = max(float(sums[key]), 1.0)
      m = dict(loss=float(sums[f'{head}/loss']) / w,
               ppl=float(np.exp(min(float(sums[f'{head}/loss']) / w, 700.0))),
               accuracy=float(sums.get(f'{head}/correct', np.nan)) / w,
               predictions=int(sums[key]))
      if f'{head}/unigram_loss' in sums:
        m['unigram_loss'] = float(sums[f'{head}/unigram_loss']) / w
        m['unigram_accuracy'] = float(sums[f'{head}/unigram_correct']) / w
      heads[head] = m
  if any(m['predictions'] for m in heads.values()):  # a set of one task: its head alone
    heads = {h: m for h, m in heads.items() if m['predictions']}
  return heads


class Progress:
  """Queues step metrics on device, fetches them in batches, checks, logs."""

  def __init__(self, step: int, total_steps: int, writer, heads=(), stop_on_nonfinite=True,
               learning_rate=None):
    self.total, self.writer, self.pending, self.heads = total_steps, writer, [], tuple(heads)
    self.learning_rate = learning_rate  # optax schedule: logged as train/learning_rate
    self.stop_on_nonfinite, self.skipped = stop_on_nonfinite, 0
    self.start_step, self.t0 = step, time.time()
    self.last_time = self.t0

  def add(self, step: int, metrics) -> None:
    """Queues a step's metrics; waits for the step before it.

    Async dispatch would otherwise let the host run up to `log_every` steps
    ahead of the device, and a SIGTERM would only be seen after all of them.
    """
    if self.pending:
      jax.block_until_ready(self.pending[-1][1]['loss'])
    self.pending.append((step, metrics))

  def flush(self, step: int) -> None:
    """Fetches queued metrics; a non-finite loss stops the run, naming its step."""
    if not self.pending:
      return
    fetched = jax.device_get([m for _, m in self.pending])
    for (s, _), m in zip(self.pending, fetched):
      self.skipped += int(m['skipped'])
      if self.stop_on_nonfinite and not np.isfinite(m['loss']):
        raise NonFiniteLossError(
            f'non-finite loss {m["loss"]} at step {s} (batch {s - 1} of the data order); '
            'lower optim.lr, raise optim.warmup_steps or check the data (or set '
            "train.nonfinite='skip'). Checkpoints before it are intact: rerun to resume")
      if self.writer:
        for k, v in m.items():
          head = k.rsplit('/', 1)[0]
          if '/' in k and m.get(f'{head}/weight', 1.0) == 0:
            continue  # the head had no target in this batch (one task a batch: ERNIE 2.0)
          self.writer.add_scalar(f'train/{k}', float(v), s)
        if self.learning_rate is not None:  # the rate step s's update used (count s - 1)
          self.writer.add_scalar('train/learning_rate', float(self.learning_rate(s - 1)), s)
    now = time.time()
    if self.writer:  # wall seconds per step, averaged over the flushed block
      seconds = (now - self.last_time) / len(self.pending)
      self.writer.add_scalar('train/step_time_s', seconds, self.pending[-1][0])
    self.pending = []
    tokens_per_s = sum(float(m['tokens']) for m in fetched) / max(now - self.last_time, 1e-9)
    steps_per_s = (step - self.start_step) / max(now - self.t0, 1e-9)
    eta = (self.total - step) / max(steps_per_s, 1e-9)
    self.last_time = now
    last = fetched[-1]
    heads = ''.join(f' {h} {last[f"{h}/loss"]:.3f}' for h in self.heads
                    if len(self.heads) > 1 and last.get(f'{h}/weight', 1.0) > 0)
    acc = f' acc {last["accuracy"]:.3f}' if 'accuracy' in last else ''
    print(f'step {step}/{self.total} loss {last["loss"]:.3f}{heads}{acc} '
          f'tokens/s {tokens_per_s:,.0f} ETA {eta / 60:.1f} min'
          + (f' skipped {self.skipped} non-finite steps' if self.skipped else ''), flush=True)

  def log_eval(self, step: int, split: str, table: dict) -> None:
    for name, heads in table.items():
      for head, m in heads.items():
        base = (f' (unigram {m["unigram_accuracy"]:.3f})' if 'unigram_accuracy' in m else '')
        print(f'step {step} {split} {name} {head}: loss {m["loss"]:.3f} accuracy '
              f'{m["accuracy"]:.3f}{base}', flush=True)
        if self.writer:
          for k, v in m.items():
            self.writer.add_scalar(f'{split}_{name}/{head}/{k}', v, step)
