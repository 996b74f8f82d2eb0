"""General distillation (ERNIE-Tiny / TinyBERT): a student learns from a frozen teacher.

The teacher's params are the run's frozen `extras` (plm/objectives/base.py): sharded by
the student's logical-axis rules, read inside the step under stop_gradient, never
updated and never saved. One student forward and one teacher forward per step give
every loss head (each weighted by objective.loss_weights):

  mlm        cross-entropy of the student on the true masked tokens (the hard labels)
  kl         T^2 * KL(teacher || student) of the temperature-T softened vocabulary
             distributions at the masked positions (Hinton et al., 2015)
  hidden     MSE between the student's hidden states, projected to the teacher's width
             (StudentLM.kd_projection), and the teacher's, per token, summed over the
             matched layers (embeddings, then student layer k <- teacher layer k*Lt/Ls)
  attention  MSE between the student's and the teacher's attention distributions of the
             matched layers, per query token (summed over keys, averaged over heads)
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from plm.compress.config import LOSSES
from plm.compress.student import layers_and_logits
from plm.errors import UserError
from plm.objectives.base import ModelFn, Objective, prediction_sums


def layer_map(student_layers: int, teacher_layers: int) -> list[int]:
  """Teacher layer of each student layer 0..Ls (0 = the embeddings): TinyBERT's uniform map."""
  return [k * teacher_layers // student_layers for k in range(student_layers + 1)]


def kl_sums(student_logits, teacher_logits, weights, temperature: float) -> dict:
  """T^2 * KL(softmax(t/T) || softmax(s/T)) per position, weighted and summed."""
  t_logp = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / temperature, -1)
  s_logp = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature, -1)
  kl = jnp.sum(jnp.exp(t_logp) * (t_logp - s_logp), -1) * temperature ** 2
  return {'kl/loss': jnp.sum(kl * weights), 'kl/weight': jnp.sum(weights)}


def attention_probs(intermediates) -> list:
  """Each block's self-attention probabilities [B, heads, q, k], in layer order."""
  enc = intermediates['encoder']
  return [enc[f'layer_{i}']['self_attention']['attention_probs'][0]
          for i in range(len([k for k in enc if k.startswith('layer_')]))]


def run_model(model, variables, inputs, *, rngs=None, deterministic=True):
  """(logits at the masked positions, every layer's states, attention probs)."""
  (logits, states), mutated = model.apply(
      variables, **inputs, deterministic=deterministic, rngs=rngs or {},
      method=layers_and_logits, mutable=['intermediates'])
  return logits, states, attention_probs(mutated['intermediates'])


def make(base: Objective, teacher: nn.Module, student_layers: int, *, losses=LOSSES,
         temperature: float = 2.0, prior_logp: np.ndarray | None = None,
         make_extras=None) -> Objective:
  """The distillation objective around `base` (a one-head MLM token objective).

  `teacher` is the teacher's EncoderLM; `make_extras() -> {'teacher': boxed params}`.
  """
  if unknown := sorted(set(losses) - set(LOSSES)):
    raise UserError(f'distill.losses names {unknown}; use some of {LOSSES}')
  if temperature <= 0:
    raise UserError(f'distill.temperature={temperature} must be > 0')
  (hard,) = base.heads
  heads = (hard,) + tuple(h for h in LOSSES if h in losses)
  match = layer_map(student_layers, teacher.encoder.layers)
  logp = None if prior_logp is None else jnp.asarray(prior_logp)

  def prepare(rng, batch, extras):
    inputs, targets = base.prepare(rng, batch, extras)
    tokens = (batch['segment_ids'] > 0).astype(jnp.float32)  # real (not padding) tokens
    mlm_weights = targets[hard]['weights']
    targets.update({h: dict(weights=mlm_weights if h == 'kl' else tokens)
                    for h in heads[1:]})
    return inputs, targets

  def loss(model_fn: ModelFn, inputs, targets, extras):
    s_logits, s_states, s_probs = run_model(model_fn.model, model_fn.variables, inputs,
                                            rngs=model_fn.rngs,
                                            deterministic=model_fn.deterministic)
    teacher_params = jax.lax.stop_gradient(extras['teacher'])  # never a gradient into it
    t_logits, t_states, t_probs = run_model(teacher, {'params': teacher_params}, inputs)
    sums = prediction_sums(hard, s_logits, targets[hard]['ids'], targets[hard]['weights'], logp)
    if 'kl' in heads:
      sums.update(kl_sums(s_logits, t_logits, targets['kl']['weights'], temperature))
    if 'hidden' in heads:
      w = targets['hidden']['weights']
      projected = model_fn.model.apply(model_fn.variables, s_states, method='project')
      per_token = sum(jnp.mean(jnp.square(projected[k] - t_states[m].astype(jnp.float32)), -1)
                      for k, m in enumerate(match))
      sums.update({'hidden/loss': jnp.sum(per_token * w), 'hidden/weight': jnp.sum(w)})
    if 'attention' in heads:
      w = targets['attention']['weights']
      per_token = sum(jnp.mean(jnp.sum(jnp.square(s_probs[k - 1].astype(jnp.float32)
                                                   - t_probs[m - 1].astype(jnp.float32)), -1),
                               1)  # [B, heads, q] -> [B, q]
                      for k, m in enumerate(match) if k)
      sums.update({'attention/loss': jnp.sum(per_token * w), 'attention/weight': jnp.sum(w)})
    return sums

  return Objective(prepare, loss, heads, make_extras)
