"""The step contract every objective (pre-training) and task (fine-tuning) keeps.

An `Objective` has two pure functions that run inside the jitted step:

  prepare(rng, batch, extras) -> (inputs, targets)
      inputs: keyword arguments of the model; targets: {head: {..., 'weights': w}}
  loss(model_fn, inputs, targets, extras) -> named sums
      {'<head>/loss': sum of losses, '<head>/weight': sum of weights, and optional
       '<head>/correct', '<head>/unigram_loss', '<head>/unigram_correct'}

The objective also says what the loop logs as `tokens` (`count_tokens(batch)`: by
default the non-pad positions of every `*segment_ids` array, e.g. src_ and tgt_) and
may check the model it trains (`check_model`, e.g. train.loss_chunk needs a
vocabulary head).

One step may train several heads (`heads`); the step divides each head's loss
sum by its weight over the whole batch and adds them with the config's
`objective.loss_weights` (default 1 each). `extras` are the frozen arrays of
the run (a teacher's params, an entity table): read, never updated, never saved.
`make_extras` (host side, optional) builds them once per run: a tree of arrays,
boxed as nn.LogicallyPartitioned(value, names) where they should shard.
"""
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from plm.errors import UserError
from plm.objectives.losses import chunked_cross_entropy, weighted_cross_entropy


def segment_tokens(batch: dict):
  """The non-pad tokens of a batch: segment id > 0 in every *segment_ids array (src_ and
  tgt_ of translation pairs too); rows without any (triples) count one a row."""
  segments = [v for k, v in batch.items() if k.endswith('segment_ids')]
  return sum(jnp.sum(v > 0) for v in segments) if segments else batch['stream'].shape[0]


class Objective(NamedTuple):
  prepare: Callable  # (rng, batch, extras) -> (inputs, targets)
  loss: Callable  # (model_fn, inputs, targets, extras) -> {'<head>/<sum>': scalar}
  heads: tuple[str, ...]  # the loss heads, in display order
  make_extras: Callable | None = None  # () -> frozen arrays for the step; None = none
  count_tokens: Callable = segment_tokens  # batch -> tokens it holds (traced in the step)
  check_model: Callable | None = None  # model -> None; raises UserError if it can't serve


class ModelFn(NamedTuple):
  """The model with its variables bound: what a loss calls."""
  model: nn.Module
  variables: dict
  rngs: dict
  deterministic: bool

  def __call__(self, method=None, **inputs):
    """The model (or one of its methods) on `inputs`, in train or eval mode."""
    return self.model.apply(self.variables, **inputs, deterministic=self.deterministic,
                            rngs=self.rngs, method=method)

  def head(self, method: str, *args):
    """A method that takes no mode (an output head on hidden states)."""
    return self.model.apply(self.variables, *args, method=method)


def prediction_sums(head: str, logits, labels, weights, prior_logp=None) -> dict:
  """Cross-entropy sums of one head; with `prior_logp`, the baseline a model must beat
  (predicting every label from the training unigram/class distribution)."""
  sums = weighted_cross_entropy(logits, labels, weights)
  return named(head, sums, labels, weights, prior_logp)


def named(head: str, sums: dict, labels, weights, prior_logp=None) -> dict:
  if prior_logp is not None:
    sums['unigram_correct'] = jnp.sum((labels == jnp.argmax(prior_logp)) * weights)
    sums['unigram_loss'] = -jnp.sum(prior_logp[labels] * weights)
  return {f'{head}/{k}': v for k, v in sums.items()}


def token_objective(head: str, fn: Callable, *, prior_logp: np.ndarray | None = None,
                    loss_chunk: int = 0) -> Objective:
  """An Objective from `fn(rng, batch) -> (inputs, ids, weights)`: one head predicting
  token ids with the model's vocabulary head (EncoderLM).

  loss_chunk > 0 runs the vocabulary head that many positions at a time
  (train.loss_chunk; the model needs `hidden` and `logits` methods).
  """
  logp = None if prior_logp is None else jnp.asarray(prior_logp)

  def prepare(rng, batch, extras):
    del extras
    inputs, ids, weights = fn(rng, batch)
    return inputs, {head: dict(ids=ids, weights=weights)}

  def loss(model_fn: ModelFn, inputs, targets, extras):
    del extras
    ids, weights = targets[head]['ids'], targets[head]['weights']
    if loss_chunk:
      hidden = model_fn(method='hidden', **inputs)
      sums = chunked_cross_entropy(lambda h: model_fn.head('logits', h), hidden, ids, weights,
                                   loss_chunk)
      return named(head, sums, ids, weights, logp)
    return prediction_sums(head, model_fn(**inputs), ids, weights, logp)

  return Objective(prepare, loss, (head,),
                   check_model=_has_vocabulary_head(loss_chunk) if loss_chunk else None)


def _has_vocabulary_head(loss_chunk: int) -> Callable:
  """A check that the model has the two halves the chunked loss calls."""
  def check(model):
    if not (hasattr(model, 'hidden') and hasattr(model, 'logits')):
      raise UserError(f'train.loss_chunk={loss_chunk} needs a language model (hidden + '
                      f'logits); {type(model).__name__} has no vocabulary head: set '
                      'train.loss_chunk=0')
  return check


def unigram_logp(counts: np.ndarray, special_ids=()) -> np.ndarray:
  """Add-one smoothed log-probabilities of training labels; `special_ids` excluded."""
  counts = counts.astype(np.float64) + 1.0
  counts[list(special_ids)] = 1e-9
  return np.log(counts / counts.sum()).astype(np.float32)


def loss_weights(objective: Objective, configured: Any) -> dict[str, float]:
  """{head: weight} from objective.loss_weights (absent heads weigh 1); unknown is an error."""
  configured = dict(configured or {})
  if unknown := sorted(set(configured) - set(objective.heads)):
    raise UserError(f'objective.loss_weights names {unknown}, but this objective trains the '
                    f'heads {list(objective.heads)}; weight those')
  return {h: float(configured.get(h, 1.0)) for h in objective.heads}
