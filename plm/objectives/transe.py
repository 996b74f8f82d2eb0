"""TransE's margin ranking loss (head 'transe') with negatives drawn inside the step.

Rows are triples: int arrays 'heads', 'relations', 'tails' [B] and 'valid' [B]
(1 for a real triple; the all-0 padding rows of a held-out pass weigh 0). Each
positive gets `negatives` corruptions: its head or its tail (never both) replaced
by an entity drawn uniformly from the other E - 1 (so a negative never equals its
positive; like pykeen, known true triples are not filtered out of the negatives).
Which side is corrupted:
  'uniform': head or tail with probability 1/2 each;
  'bern':    Wang et al. (2014): head with probability tph / (tph + hpt) of the
             triple's relation (tails per head, heads per tail, from training), so a
             one-to-many relation mostly corrupts its one side.

Loss per (positive, negative) pair: max(0, margin - s_pos + s_neg), s = the model's
score -||h + r - t||; 'transe/weight' counts pairs, so the step's loss is the mean
over pairs (pykeen's MarginRankingLoss, reduction='mean'). 'transe/correct' counts
pairs the positive wins (s_pos > s_neg): the pairwise accuracy the loop prints.

Example: one positive (h=0, r=0, t=1) and one negative (h=0, r=0, t=2),
margin 1, scores -0.5 and -2.0: loss max(0, 1 + 0.5 - 2.0) = 0, correct 1.
"""
import jax
import jax.numpy as jnp
import numpy as np

from plm.errors import UserError
from plm.objectives import base

HEAD = 'transe'
SAMPLERS = ('uniform', 'bern')
KEYS = ('heads', 'relations', 'tails', 'valid')


def head_probabilities(triples: np.ndarray, num_relations: int, sampler: str) -> np.ndarray:
  """P(corrupt the head) per relation [R], float32, from training triples [N, 3]."""
  if sampler not in SAMPLERS:
    raise UserError(f'objective.sampler={sampler!r}: use one of {SAMPLERS}')
  if sampler == 'uniform':
    return np.full((num_relations,), 0.5, np.float32)
  h, r, t = (triples[:, i].astype(np.int64) for i in range(3))
  n = np.bincount(r, minlength=num_relations).astype(np.float64)
  distinct = lambda e: np.bincount(np.unique(r * (e.max() + 1) + e) // (e.max() + 1),
                                   minlength=num_relations)
  tph = n / np.maximum(distinct(h), 1)  # mean tails per distinct head of each relation
  hpt = n / np.maximum(distinct(t), 1)  # mean heads per distinct tail
  return np.where(n > 0, tph / np.maximum(tph + hpt, 1e-9), 0.5).astype(np.float32)


def corrupt(rng, batch, num_entities: int, negatives: int, head_prob):
  """The model's inputs for a batch of positives and `negatives` corruptions of each:
  'heads', 'relations', 'tails' [B] (the positives), 'replacements' [B, negatives] (the
  new entity) and 'replace_head' [B, negatives] (True: it replaces the head, else the
  tail). head_prob [B]: P(corrupt the head) per row."""
  b = batch['heads'].shape[0]
  heads, rels, tails = (batch[k].astype(jnp.int32) for k in ('heads', 'relations', 'tails'))
  k_side, k_ent = jax.random.split(rng)
  replace_head = jax.random.uniform(k_side, (b, negatives)) < head_prob[:, None]
  old = jnp.where(replace_head, heads[:, None], tails[:, None])
  new = jax.random.randint(k_ent, (b, negatives), 0, num_entities - 1)
  new = new + (new >= old)  # uniform over the E - 1 entities that are not `old`
  return dict(heads=heads, relations=rels, tails=tails, replacements=new,
              replace_head=replace_head)


def objective(*, num_entities: int, negatives: int = 1, margin: float = 1.0,
              head_prob=None) -> base.Objective:
  """The 'transe' head: margin ranking over `negatives` corruptions per positive.

  head_prob: P(corrupt the head) per relation [R] (head_probabilities); None = 1/2.
  Targets' weights are per pair [B, negatives], so the loop's loss is the pair mean.
  """
  if num_entities < 2:
    raise UserError(f'a graph of {num_entities} entities has nothing to corrupt a triple '
                    'with; TransE needs at least 2 entities')
  if negatives < 1:
    raise UserError(f'objective.negatives={negatives}: draw at least 1 per positive')
  prob = None if head_prob is None else jnp.asarray(head_prob, jnp.float32)

  def prepare(rng, batch, extras):
    del extras
    if missing := [k for k in KEYS if k not in batch]:
      raise UserError(f'transe rows need the arrays {KEYS}; the batch lacks {missing}')
    rels = batch['relations']
    p = jnp.full(rels.shape, 0.5) if prob is None else prob[rels]
    inputs = corrupt(rng, batch, num_entities, negatives, p)
    pairs = jnp.broadcast_to(batch['valid'][:, None], (rels.shape[0], negatives))
    return inputs, {HEAD: dict(weights=pairs.astype(jnp.float32))}

  def loss(model_fn, inputs, targets, extras):
    del extras
    scores = model_fn(**inputs)  # [B, 1 + negatives]
    pos, neg = scores[:, :1], scores[:, 1:]
    w = targets[HEAD]['weights']
    return {f'{HEAD}/loss': jnp.sum(jnp.maximum(0.0, margin - pos + neg) * w),
            f'{HEAD}/weight': jnp.sum(w),
            f'{HEAD}/correct': jnp.sum((pos > neg) * w)}

  return base.Objective(prepare, loss, (HEAD,))
