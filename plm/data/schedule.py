"""ERNIE 2.0's continual multi-task schedule: stages that add tasks, iterations per task.

A schedule is a list of stages; stage s runs `steps` optimizer steps and names the tasks
it trains with their shares, e.g. (the paper's Table 2 shape, in steps):

  stage 1: 400 steps  {knowledge_masking: 1}
  stage 2: 400 steps  {knowledge_masking: 1, capitalization: 1, sentence_distance: 2}

Each step (an iteration) trains one task on a whole batch, as in the paper. A stage gives
task k exactly round(share_k * steps) of its steps (largest remainders, so they sum to
`steps`), in an order shuffled by (seed, stage); so the allocation is exact, not sampled.
Task t's n-th iteration reads batch n of the task's own Rows order (plm.data.rows), so
every task walks through its data without skipping. All of it is a pure function of
(seed, step): a run resumed mid-stage sees exactly the batches an uninterrupted one would.

Task ids (the model's task embedding, the `stream` of every row) are the order in which
tasks first appear in the schedule.
"""
import difflib
import functools
import hashlib
import json
from typing import NamedTuple

import numpy as np

from plm.data import dataset
from plm.data import rows as rows_lib
from plm.errors import UserError


class Stage(NamedTuple):
  steps: int
  shares: dict  # task -> share of the stage's steps (> 0)


def parse_stages(stages, known_tasks, continual: bool = True) -> list[Stage]:
  """Stages from config entries {'steps': n, 'tasks': {task: share}}; bad input is an error.

  `continual`: every stage keeps the earlier stages' tasks (ERNIE 2.0); False allows a
  stage to drop them (the paper's sequential baseline, which measures forgetting).
  """
  if not stages:
    raise UserError('ernie2.stages is empty: name at least one stage, e.g. '
                    "({'steps': 400, 'tasks': {'knowledge_masking': 1.0}},)")
  out = []
  for s, stage in enumerate(stages, start=1):
    stage = dict(stage)
    if set(stage) != {'steps', 'tasks'}:
      raise UserError(f'ernie2.stages[{s}] has keys {sorted(stage)}; a stage is '
                      "{'steps': n, 'tasks': {task: share}}")
    shares = {str(k): float(v) for k, v in dict(stage['tasks']).items()}
    for task in shares:
      if task not in known_tasks:
        near = difflib.get_close_matches(task, list(known_tasks), n=1)
        raise UserError(f'ernie2.stages[{s}] names unknown task {task!r}' +
                        (f' (did you mean {near[0]!r}?)' if near else '') +
                        f'; the tasks are {list(known_tasks)}')
    if int(stage['steps']) < 1 or not shares or min(shares.values()) <= 0:
      raise UserError(f'ernie2.stages[{s}] needs steps >= 1 and at least one task, each with '
                      f'a share > 0; it has steps={stage["steps"]}, tasks={shares}')
    out.append(Stage(int(stage['steps']), shares))
  for s, (before, after) in enumerate(zip(out, out[1:]), start=2):
    if continual and (dropped := sorted(set(before.shares) - set(after.shares))):
      raise UserError(f'ernie2.stages[{s}] drops {dropped}: a continual stage trains every '
                      'earlier task together with its new ones (for the sequential '
                      'baseline set --config.ernie2.continual=False)')
  return out


def allocate(steps: int, shares: dict) -> dict:
  """{task: steps} with counts round(share * steps) by largest remainders, summing to `steps`."""
  names = list(shares)
  p = np.array([shares[n] for n in names], np.float64)
  exact = p / p.sum() * steps
  counts = np.floor(exact).astype(np.int64)
  for i in np.argsort(-(exact - counts), kind='stable')[:steps - counts.sum()]:
    counts[i] += 1
  return dict(zip(names, counts.tolist()))


class ScheduledDataset(dataset.Dataset):
  """Rows of several tasks, one task per batch by the stage schedule; Rows' batch API."""

  def __init__(self, tasks: dict[str, rows_lib.Rows], stages: list[Stage], seed: int):
    self.task_names = task_order(stages)
    if missing := sorted(set(self.task_names) - set(tasks)):
      raise UserError(f'the schedule trains {missing}, which have no rows')
    self.tasks = [tasks[n].with_stream(i) for i, n in enumerate(self.task_names)]
    if len({t.keys for t in self.tasks}) != 1 or len({t.seq_len for t in self.tasks}) != 1:
      raise UserError('every task must give rows of the same keys and length')
    self.stages, self.seed = list(stages), seed
    order = [np.random.default_rng([seed, s]).permutation(
        np.repeat([self.task_names.index(n) for n in allocate(st.steps, st.shares)],
                  list(allocate(st.steps, st.shares).values())))
             for s, st in enumerate(self.stages)]
    self.task_by_step = np.concatenate(order).astype(np.int32)
    # the n-th iteration of its task: which batch of the task's own order to read
    self.nth_by_step = np.zeros_like(self.task_by_step)
    seen = np.zeros(len(self.tasks), np.int64)
    for step, t in enumerate(self.task_by_step):
      self.nth_by_step[step], seen[t] = seen[t], seen[t] + 1
    self.info = {n: len(t) for n, t in zip(self.task_names, self.tasks)}

  @property
  def steps(self) -> int:
    return len(self.task_by_step)

  def __len__(self) -> int:
    return sum(len(t) for t in self.tasks)

  @property
  def seq_len(self) -> int:
    return self.tasks[0].seq_len

  def stage_of(self, step: int) -> int:
    """The 0-based stage that step `step` (0-based) belongs to."""
    return int(np.searchsorted(np.cumsum([s.steps for s in self.stages]), step, side='right'))

  def task_of(self, step: int) -> int:
    if not 0 <= step < self.steps:
      raise UserError(f'step {step} is outside the schedule of {self.steps} steps (the sum of '
                      "ernie2.stages' steps); set train.steps to it")
    return int(self.task_by_step[step])

  def batch(self, step: int, batch_size: int, *, seed: int, process_index: int = 0,
            process_count: int = 1) -> dict[str, np.ndarray]:
    """This process's rows of global batch `step`: all of one task, `stream` = its id."""
    t = self.task_of(step)
    return self.tasks[t].batch(int(self.nth_by_step[step]), batch_size, seed=seed * 1000 + t,
                               process_index=process_index, process_count=process_count)

  def token_counts(self, vocab_size: int) -> np.ndarray:
    return sum(t.token_counts(vocab_size) for t in self.tasks)

  @property
  def schedule(self) -> list:
    """The schedule as JSON-able data (saved in checkpoints: a resume must match it)."""
    return [dict(steps=s.steps, tasks=dict(s.shares)) for s in self.stages]

  @property
  def meta(self) -> dict:
    """What a checkpoint records and a resume must match (plm/meta.py check_meta)."""
    return dict(schedule=self.schedule, task_ids=list(self.task_names))

  @functools.cached_property
  def fingerprint(self) -> str:
    h = hashlib.sha256(json.dumps(self.schedule, sort_keys=True).encode())
    for name, t in zip(self.task_names, self.tasks):
      h.update(f'{name}:{t.fingerprint};'.encode())
    return h.hexdigest()[:16]

  def order_fingerprint(self, batch_size: int, *, seed: int, steps: int = 100) -> str:
    h = hashlib.sha256()
    for step in range(min(steps, self.steps)):
      h.update(self.batch(step, batch_size, seed=seed)['tokens'].tobytes())
    return h.hexdigest()[:16]

  @property
  def summary(self) -> str:
    parts = []
    for s, st in enumerate(self.stages, start=1):
      alloc = allocate(st.steps, st.shares)
      parts.append(f'stage {s}: ' + ', '.join(f'{n} {k} steps' for n, k in alloc.items()))
    rows = ', '.join(f'{n} {len(t)} rows' for n, t in zip(self.task_names, self.tasks))
    return '; '.join(parts) + f' | {rows}'


def task_order(stages: list[Stage]) -> tuple[str, ...]:
  """Task names in order of first appearance: their task ids."""
  return tuple(dict.fromkeys(n for s in stages for n in s.shares))
