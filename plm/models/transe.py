"""TransE (Bordes et al., 2013): a relation is a translation between entity vectors.

A triple (h, r, t) scores -||e_h + w_r - e_t|| (L1 or L2), higher = more plausible.
Entity vectors live on the unit sphere, the paper's constraint ||e|| = 1: the
stored table is normalised in the forward pass, so every score, gradient and
exported vector sees unit-norm entities. (The paper projects after each SGD
update; plm's one loop owns the optimizer update, and a projection there would
need a hook in it. Normalising in the forward pass is the same constraint, is a
pure function of the params, and keeps Adam's moments on the same raw table.)
Both tables start uniform in +-6/sqrt(dim) (the paper's init), rows L2-normalised.

The entity table carries the logical axes ('vocab', 'embed'), like a token
table, so with the default rules its rows shard over the mesh's 'model' axis
(a Wikidata-scale table split over devices); relations are few: ('classes', 'embed').
"""
import os
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from plm.errors import MissingFileError, UserError

P = nn.with_logical_partitioning
NORMS = (1, 2)
SHAPE_FIELDS = ()  # entity and relation counts come from the graph, not init_from
HAS_VOCABULARY = False  # a graph's entities, no text: plm.load gives no tokenizer


def config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.num_entities = -1  # rows of the entity table; -1 = the graph's entity count (the job sets it)
  c.num_relations = -1  # rows of the relation table; -1 = the graph's relation count
  c.dim = 100  # embedding size of entities and relations
  c.norm = 1  # distance: 1 (L1, the paper's WordNet choice) or 2 (L2)
  return c


def build(model_config, vocab_size: int) -> 'TransE':
  """`vocab_size` is the entity count (the graph's 'vocabulary')."""
  mc = model_config
  if mc.norm not in NORMS:
    raise UserError(f'model.norm={mc.norm!r}: use 1 (L1 distance) or 2 (L2)')
  for field in ('num_entities', 'num_relations'):
    if mc[field] <= 0:
      raise UserError(f'model.{field}={mc[field]}: the transe job sets it from the graph; '
                      'build the model through plm/jobs/transe.py or set it > 0')
  if mc.num_entities != vocab_size:
    raise UserError(f'model.num_entities={mc.num_entities} but the graph has {vocab_size} '
                    'entities; set -1 to take the graph\'s count')
  return TransE(mc.num_entities, mc.num_relations, mc.dim, mc.norm)


def unit_rows(x, eps: float = 1e-12):
  """Rows of x scaled to unit L2 norm (a zero row stays zero)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def uniform_unit_rows(key, shape, dtype=jnp.float32):
  """The paper's init: uniform in +-6/sqrt(dim), then each row L2-normalised."""
  bound = 6.0 / shape[-1] ** 0.5
  return unit_rows(jax.random.uniform(key, shape, dtype, -bound, bound))


def distance(x, y, norm: int):
  """||x - y|| over the last axis (broadcasting), L1 or L2."""
  if norm == 1:
    return jnp.sum(jnp.abs(x - y), axis=-1)
  return jnp.sqrt(jnp.sum(jnp.square(x - y), axis=-1))


class TransE(nn.Module):
  """Entity table [E, dim] and relation table [R, dim]; scores -||e_h + w_r - e_t||."""
  num_entities: int
  num_relations: int
  dim: int = 100
  norm: int = 1  # 1 = L1, 2 = L2

  def setup(self):
    self.entities = self.param('entities', P(uniform_unit_rows, ('vocab', 'embed')),
                               (self.num_entities, self.dim))
    self.relations = self.param('relations', P(uniform_unit_rows, ('classes', 'embed')),
                                (self.num_relations, self.dim))

  def __call__(self, heads, relations, tails, replacements=None, replace_head=None,
               deterministic: bool = True):
    """Scores -||e_h + w_r - e_t||.

    Without replacements: of int id triples of any one shape. With replacements [B, K]
    and replace_head [B, K] (bool): [B, 1 + K], the positives (heads, relations, tails
    [B]) in column 0, then each one with its head (or tail) replaced by the entity in
    `replacements`. Each positive's vectors are gathered once and broadcast, so the
    gradient scatters B + B + B*K entity rows, not 2 * B * (1 + K).
    """
    del deterministic  # no dropout
    ids = [heads, tails] + ([] if replacements is None else [replacements])
    h, t, *new = self.entity_vectors(*ids)
    r = jnp.take(self.relations, relations, axis=0, mode='clip')
    if replacements is None:
      return -distance(h + r, t, self.norm)
    side = replace_head[..., None]
    pos = -distance(h + r, t, self.norm)[:, None]
    neg = -distance(jnp.where(side, new[0], h[:, None]) + r[:, None],
                    jnp.where(side, t[:, None], new[0]), self.norm)
    return jnp.concatenate([pos, neg], axis=1)

  def entity_vectors(self, *ids):
    """Unit-norm entity vectors of each id array. When the ids outnumber the entities,
    the whole table is normalised once and then gathered (fewer rows to normalise and
    to backpropagate through); otherwise the gathered rows are. Same values either way."""
    # ids come from the graph's vocabulary (always in range); 'clip' skips jnp.take's
    # default out-of-range fill, whose masked gather and scatter cost 1.5x the time
    take = lambda table, i: jnp.take(table, i, axis=0, mode='clip')
    if sum(i.size for i in ids) >= self.num_entities:
      table = unit_rows(self.entities)
      return [take(table, i) for i in ids]
    return [unit_rows(take(self.entities, i)) for i in ids]

  def tables(self):
    """(unit-norm entity vectors [E, dim], relation vectors [R, dim]): what the model
    scores with, what link prediction ranks over and what the job exports."""
    return unit_rows(self.entities), self.relations


class Vectors(NamedTuple):
  """A trained TransE's export: what the knowledge encoder reads (load_vectors)."""
  entity_keys: tuple[str, ...]
  entities: np.ndarray  # float32 [E, dim], unit L2 rows, row i = entity_keys[i]
  relation_keys: tuple[str, ...]
  relations: np.ndarray  # float32 [R, dim]
  fingerprint: str  # the graph's (plm.data.kg.Graph.fingerprint)
  norm: int

  def lookup(self, keys) -> np.ndarray:
    """Rows [len(keys)] of `keys` in the entity table; unknown keys are one clear error."""
    index = {k: i for i, k in enumerate(self.entity_keys)}
    if missing := [k for k in keys if k not in index]:
      raise UserError(f'{len(missing)} entities are not in the TransE export (graph '
                      f'{self.fingerprint}), e.g. {missing[:5]}; train TransE on the graph '
                      'the alias table was built from')
    return np.asarray([index[k] for k in keys], np.int64)


def save_vectors(path: str, entities, relations, *, entity_keys, relation_keys,
                 fingerprint: str, norm: int) -> str:
  """Writes the tables, their keys and the graph fingerprint as one .npz."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'wb') as f:  # a file object: np.savez would append .npz to a bare name
    np.savez(f, entities=np.asarray(entities, np.float32),
             relations=np.asarray(relations, np.float32),
             entity_keys=np.asarray(entity_keys, str), relation_keys=np.asarray(relation_keys, str),
             fingerprint=np.asarray(fingerprint), norm=np.asarray(norm))
  return path


def load_vectors(path: str) -> Vectors:
  """The export of save_vectors (plm's transe job writes {workdir}/entities.npz)."""
  if not os.path.isfile(path):
    raise MissingFileError(f'no TransE export at {path}; run the transe job '
                           '(configs/transe.py), which writes {workdir}/entities.npz')
  with np.load(path) as z:
    if missing := sorted({'entities', 'entity_keys', 'fingerprint'} - set(z.files)):
      raise UserError(f'{path} is not a TransE export (it lacks {missing}); use the '
                      'entities.npz the transe job writes')
    return Vectors(tuple(z['entity_keys'].tolist()), z['entities'],
                   tuple(z['relation_keys'].tolist()), z['relations'], str(z['fingerprint']),
                   int(z['norm']))
