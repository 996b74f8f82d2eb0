"""ERNIE 2.0's multi-task objective: one head per task, each with its own loss and metrics.

Rows come from plm/data/ernie2_tasks.py (one layout for every task) with their task id in
`stream`; the task id is also the model's task embedding. A head's targets are weighted by
`stream == its task id`, so a batch of one task trains that head only, and a mixed batch
trains each head on its own rows.

Knowledge masking (ERNIE 1.0's entity- and phrase-level masking, on the fly, in jnp):
`rate` of a row's non-special tokens are predicted; up to `entity_share` of that budget in
whole entity mentions (the row's `units`, from the entity linker: each chosen with
probability `entity_prob`, in row order while whole units fit), the rest in the phrase-level
n-gram units of plm/objectives/unilm.py's `span_mask` (1 token, or 2-3 `ngram_prob` of the
time). 80/10/10 corruption as BERT. Slots beyond `num_predictions` are dropped (their tokens
stay visible), so set num_predictions >= rate * seq_len + 4.
"""
import jax
import jax.numpy as jnp
import numpy as np

from plm import masks
from plm.errors import UserError
from plm.objectives import base, mlm, unilm


def first_and_last(units):
  """[B, L] indices of the first and last position of the unit each position lies in.

  Example, units = [0, 3, 3, 0, 4]:  first [0, 1, 1, 3, 4], last [0, 2, 2, 3, 4].
  """
  length = units.shape[1]
  idx = jnp.broadcast_to(jnp.arange(length), units.shape)
  prev = jnp.pad(units[:, :-1], ((0, 0), (1, 0)))
  nxt = jnp.pad(units[:, 1:], ((0, 0), (0, 1)))
  first = jax.lax.cummax(jnp.where((units != prev) | (units == 0), idx, 0), axis=1)
  last = jax.lax.cummin(jnp.where((units != nxt) | (units == 0), idx, length), axis=1,
                        reverse=True)
  return first, last


def entity_mask(rng, units, budget, prob: float):
  """[B, L] bool: whole entity units, each drawn with probability `prob`, kept in row order
  while the masked tokens stay within `budget` [B] (a unit that would cross it is dropped)."""
  first, last = first_and_last(units)
  drawn = jnp.take_along_axis(jax.random.uniform(rng, units.shape), first, axis=1) < prob
  drawn = drawn & (units > 0)
  total_at_end = jnp.take_along_axis(jnp.cumsum(drawn, axis=1), last, axis=1)
  return drawn & (total_at_end <= budget[:, None])


def make_knowledge_masking(*, mask_id: int, vocab_size: int, special_ids, num_predictions: int,
                           rate: float = 0.15, entity_share: float = 0.5,
                           entity_prob: float = 0.5, ngram_prob: float = 0.2):
  """`km(rng, batch) -> (tokens, predict_positions, targets, weights, masked [B, L])`."""
  special = jnp.asarray(sorted(special_ids), jnp.int32)
  first_normal_id = int(max(special_ids)) + 1

  def km(rng, batch):
    tokens, seg = batch['tokens'], batch['segment_ids']
    k_ent, k_round, k_span, k_corrupt = jax.random.split(rng, 4)
    eligible = ~jnp.isin(tokens, special) & (seg > 0)
    n_target = jnp.floor(rate * eligible.sum(-1) + jax.random.uniform(k_round, seg.shape[:1]))
    entities = entity_mask(k_ent, batch['units'], jnp.floor(entity_share * n_target),
                           entity_prob) & eligible
    rest = jnp.maximum(n_target - entities.sum(-1), 0).astype(jnp.int32)
    phrases, _, _ = unilm.span_mask(k_span, eligible & ~entities, seg, rest, num_predictions,
                                    ngram_prob)
    masked = entities | phrases
    return mlm.predict_masked(k_corrupt, tokens, masked, num_predictions, mask_id=mask_id,
                              vocab_size=vocab_size, first_normal_id=first_normal_id) + (masked,)

  return km


def make(task_heads, *, priors: dict, km=None) -> base.Objective:
  """The objective of `task_heads` ((task, kind), ...; the index is the task id; kind 'mlm',
  'token' or 'sentence'); `priors` {task: log-probabilities} give each head's baseline;
  `km` is make_knowledge_masking's function (needed by an 'mlm' task)."""
  task_heads = tuple(task_heads)
  if any(kind == 'mlm' for _, kind in task_heads) and km is None:
    raise UserError('a masked-token task needs the knowledge-masking function (km)')
  priors = {t: jnp.asarray(p) for t, p in priors.items()}

  def prepare(rng, batch, extras):
    del extras
    task = batch['stream']
    tokens = batch['tokens']
    targets = {}
    for t, (name, kind) in enumerate(task_heads):
      here = (task == t).astype(jnp.float32)
      # another task's labels may lie outside this head's classes (NaN even at weight 0)
      labels = jnp.where((task == t)[:, None], batch['labels'], 0)
      if kind == 'mlm':
        masked_tokens, positions, ids, weights, _ = km(jax.random.fold_in(rng, t), batch)
        tokens = jnp.where((task == t)[:, None], masked_tokens, tokens)
        targets[name] = dict(ids=ids, weights=weights * here[:, None], positions=positions)
      elif kind == 'token':
        targets[name] = dict(ids=labels,
                             weights=batch['label_weights'].astype(jnp.float32) * here[:, None])
      else:
        targets[name] = dict(ids=labels[:, 0],
                             weights=batch['label_weights'][:, 0].astype(jnp.float32) * here)
    inputs = dict(tokens=tokens, positions=batch['positions'],
                  mask=masks.padding_mask(batch['segment_ids'] > 0),
                  token_types=batch['token_types'],
                  tasks=jnp.broadcast_to(task[:, None], tokens.shape))  # one id a row
    return inputs, targets

  def loss(model_fn, inputs, targets, extras):
    del extras
    x = model_fn(**inputs)
    sums = {}
    for name, kind in task_heads:
      t = targets[name]
      if kind == 'mlm':
        h = jnp.take_along_axis(x, t['positions'][..., None], axis=1)
        logits = model_fn.head('vocab_logits', h)
      elif kind == 'token':
        logits = model_fn.head('token_logits', x, name)
      else:
        logits = model_fn.head('sentence_logits', x, name)
      sums.update(base.prediction_sums(name, logits, t['ids'], t['weights'], priors.get(name)))
    return sums

  return base.Objective(prepare, loss, tuple(n for n, _ in task_heads))


def class_counts(rows, kind: str, classes: int) -> np.ndarray:
  """Training label counts of a task's rows (the majority-class baseline)."""
  labels, weights = rows.arrays['labels'], rows.arrays['label_weights']
  if kind == 'sentence':
    labels, weights = labels[:, 0], weights[:, 0]
  return np.bincount(labels[weights > 0], minlength=classes)
