"""ERNIE's pre-training step: MLM + NSP + dEA (denoising entity auto-encoder), one objective.

Rows come from plm/data/ernie.py (sentence pairs, `entities` aligned to first subwords, 0 =
none, `nsp_labels`). Inside the jitted step, with an explicit key:
  - mlm: BERT's 15% of tokens, corrupted 80/10/10 (plm/objectives/mlm.py);
  - nsp: is B the sentence after A, from the pooled first token;
  - dea: every token with an aligned entity predicts that entity with a softmax over the
    entities of the batch (thunlp/ERNIE's candidate set: the distinct true entities of the
    aligned tokens in the batch). Its input alignment is noised as in the paper: 5% of the
    aligned pairs get a random entity of the whole table, 15% lose their entity (id 0:
    the token-only path), 80% stay.
With entities=False (the BERT baseline) every entity id is 0 and only mlm and nsp train: the
same model and data without knowledge.

The entity table is the loop's frozen `extras['entities']` ([num_entities + 1, dim] TransE
vectors, row 0 zero, sharded like a token table); the model reads it (frozen) or starts its
own trained copy from it (model.entity_table).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from plm import masks
from plm.errors import UserError
from plm.objectives import base, mlm
from plm.objectives.losses import weighted_cross_entropy

DEA_RANDOM, DEA_MASK = 0.05, 0.15  # the paper's shares of aligned pairs noised


def noise_entities(rng, entities, num_entities: int, random_share: float = DEA_RANDOM,
                   mask_share: float = DEA_MASK):
  """dEA's input noise: aligned ids (> 0) replaced by a random entity (1..num_entities) with
  probability random_share, dropped to 0 with probability mask_share, else kept."""
  k_u, k_random = jax.random.split(rng)
  u = jax.random.uniform(k_u, entities.shape)
  random_ids = jax.random.randint(k_random, entities.shape, 1, num_entities + 1)
  noised = jnp.where(u < random_share, random_ids,
                     jnp.where(u < random_share + mask_share, 0, entities))
  return jnp.where(entities > 0, noised, 0)


def candidates_and_labels(entities, num_entities: int):
  """(candidate ids [B * L] sorted, the distinct aligned entities of the batch then filler
  num_entities + 1; each token's index into them [B, L]; which candidates are real [B * L])."""
  filler = num_entities + 1
  flat = jnp.where(entities > 0, entities, filler).reshape(-1)
  candidates = jnp.unique(flat, size=flat.size, fill_value=filler)
  labels = jnp.searchsorted(candidates, entities).astype(jnp.int32)
  return candidates, jnp.minimum(labels, flat.size - 1), candidates != filler


def make(*, mask_id: int, vocab_size: int, special_ids, num_predictions: int,
         num_entities: int, entity_table: np.ndarray, mask_rate: float = 0.15,
         entities: bool = True, prior_logp: np.ndarray | None = None) -> base.Objective:
  """The objective; `entity_table` [num_entities + 1, dim] becomes the frozen extras."""
  special = jnp.asarray(sorted(special_ids), jnp.int32)
  first_normal_id = int(max(special_ids)) + 1
  heads = ('mlm', 'nsp', 'dea') if entities else ('mlm', 'nsp')
  logp = None if prior_logp is None else jnp.asarray(prior_logp)
  if entity_table.shape[0] != num_entities + 1:
    raise UserError(f'the entity table has {entity_table.shape[0]} rows; the graph needs '
                    f'{num_entities} + 1 (row 0 = no entity)')

  def prepare(rng, batch, extras):
    tokens, valid = batch['tokens'], batch['segment_ids'] > 0
    k_pick, k_corrupt, k_dea = jax.random.split(rng, 3)
    positions, weights = mlm.pick_positions(k_pick, ~jnp.isin(tokens, special),
                                            num_predictions, mask_rate)
    targets = jnp.take_along_axis(tokens, positions, axis=1)
    replaced = mlm.corrupt(k_corrupt, targets, weights, mask_id=mask_id, vocab_size=vocab_size,
                           first_normal_id=first_normal_id)
    rows = jnp.arange(tokens.shape[0])[:, None]
    ents = batch['entities'] * valid if entities else jnp.zeros_like(tokens)
    inputs = dict(tokens=tokens.at[rows, positions].set(replaced), positions=batch['positions'],
                  mask=masks.padding_mask(valid), token_types=batch['token_types'],
                  entity_table=extras['entities'], predict_positions=positions,
                  entities=noise_entities(k_dea, ents, num_entities) if entities else ents)
    out = dict(mlm=dict(ids=targets, weights=weights.astype(jnp.float32)),
               nsp=dict(ids=batch['nsp_labels'], weights=valid[:, 0].astype(jnp.float32)))
    if entities:
      candidates, labels, real = candidates_and_labels(ents, num_entities)
      inputs['candidates'] = candidates
      out['dea'] = dict(ids=labels, weights=(ents > 0).astype(jnp.float32), real=real)
    return inputs, out

  def loss(model_fn, inputs, targets, extras):
    del extras
    out = model_fn(**inputs)
    t = targets
    sums = base.prediction_sums('mlm', out['mlm'], t['mlm']['ids'], t['mlm']['weights'], logp)
    sums.update(base.prediction_sums('nsp', out['nsp'], t['nsp']['ids'], t['nsp']['weights'],
                                     jnp.log(jnp.full((2,), 0.5))))
    if 'dea' in t:
      logits = jnp.where(t['dea']['real'][None, None, :], out['dea'], -1e9)
      sums.update(base.named('dea', weighted_cross_entropy(logits, t['dea']['ids'],
                                                           t['dea']['weights']),
                             t['dea']['ids'], t['dea']['weights']))
    return sums

  return base.Objective(prepare, loss, heads, lambda: extras_of(entity_table))


def extras_of(entity_table: np.ndarray) -> dict:
  """The frozen extras: the entity table, its rows sharded like a token table's."""
  return {'entities': nn.LogicallyPartitioned(jnp.asarray(entity_table, jnp.float32),
                                              ('vocab', 'kv'))}


def entity_table(vectors: np.ndarray) -> np.ndarray:
  """[E + 1, dim] with a zero row 0 (no entity) above the TransE vectors of entities 0..E-1."""
  return np.concatenate([np.zeros((1, vectors.shape[1]), np.float32),
                         np.asarray(vectors, np.float32)])


def classifier(class_counts: np.ndarray, *, entity_table: np.ndarray,
               entities: bool = True) -> base.Objective:
  """Fine-tuning at marker tokens (plm/data/ernie_tasks.py): one label per row, the
  majority-class baseline from `class_counts`; entities=False hides every entity (BERT)."""
  logp = jnp.asarray(base.unigram_logp(np.asarray(class_counts)))

  def prepare(rng, batch, extras):
    del rng
    valid = batch['segment_ids'] > 0
    ents = batch['entities'] * valid if entities else jnp.zeros_like(batch['tokens'])
    inputs = dict(tokens=batch['tokens'], positions=batch['positions'],
                  mask=masks.padding_mask(valid), token_types=batch['token_types'],
                  entities=ents, markers=batch['markers'], entity_table=extras['entities'])
    return inputs, {'classify': dict(ids=batch['labels'],
                                     weights=valid[:, 0].astype(jnp.float32))}

  def loss(model_fn, inputs, targets, extras):
    del extras
    t = targets['classify']
    return base.prediction_sums('classify', model_fn(**inputs), t['ids'], t['weights'], logp)

  return base.Objective(prepare, loss, ('classify',), lambda: extras_of(entity_table))
