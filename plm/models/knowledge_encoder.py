"""ERNIE (Zhang et al., 2019, "ERNIE: Enhanced Language Representation with Informative
Entities"; thunlp/ERNIE): a T-encoder of N BERT layers, then a K-encoder of M aggregator
layers that fuse each token with the knowledge-graph entity aligned to it.

One aggregator layer (thunlp's BertLayerMix; post-LN with residuals, as BERT):
  w~ = LN(w + MH-ATT(w))                 over the tokens (mask: the row's valid tokens)
  e~ = LN(e + MH-ATT(e))                 over the aligned entities (mask: positions with one)
  h  = act(W_t w~ + W_e e~ + b)          information fusion, [B, L, ff]
  w' = LN(w~ + W_t' h + b_t'), e' = LN(e~ + W_e' h + b_e')
A token without an entity takes the token-only path h = act(W_t w~ + b): the W_e term is
multiplied by its 0/1 entity indicator, and its entity state is 0. So with no entity in a
row, an aggregator layer is exactly a BERT layer (TransformerBlock) with W_t/W_t' as its
feed-forward (tests/models/test_knowledge_encoder.py checks both on the same weights).

Entity ids (the `entities` input, [B, L] int): 0 = no entity at this token; k >= 1 = entity
k - 1 of the graph (plm.data.kg.Graph.entities), aligned to its mention's first subword. The
entity table [num_entities + 1, entity_dim] (row 0 unused) is either frozen TransE vectors,
passed in by the objective from the loop's `extras` (model.entity_table='frozen', the
paper's choice), or a parameter initialised from those vectors and trained with the model
('trained'). Either way entity vectors are projected to the model size before layer 1.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from plm import masks
from plm.errors import UserError
from plm.models import encoder as encoder_lib
from plm.nn import precision
from plm.nn.attention import MultiHeadAttention, dense_init
from plm.nn.dropout import Dropout
from plm.nn.heads import MlmHead
from plm.nn.transformer import ACTIVATIONS, layer_norm

P = nn.with_logical_partitioning
ENTITY_TABLES = ('frozen', 'trained')
SHAPE_FIELDS = encoder_lib.SHAPE_FIELDS  # the T-encoder's; init_from must match them


def dense(features: int, name: str, axes=('embed', 'mlp'), use_bias: bool = True, dtype=jnp.float32):
  """A Dense layer whose product's operands are `dtype` (plm/nn/precision.py)."""
  return nn.Dense(features, use_bias=use_bias, dot_general=precision.dot_general(dtype),
                  name=name, kernel_init=P(dense_init(), axes),
                  bias_init=P(nn.initializers.zeros, axes[1:]))


class Fusion(nn.Module):
  """The information-fusion layer: new token and entity states from h (module docstring)."""
  ff: int
  activation: str = 'gelu'
  dropout: float = 0.1
  ln_eps: float = 1e-12
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, w, e, has_entity, deterministic: bool = True):
    """w, e [B, L, H] (after their attention), has_entity [B, L] bool -> (w', e')."""
    hidden = w.shape[-1]
    on = has_entity[..., None].astype(w.dtype)
    h = dense(self.ff, 'token_in', dtype=self.dtype)(w)
    h = h + on * dense(self.ff, 'entity_in', use_bias=False, dtype=self.dtype)(e)
    h = ACTIVATIONS[self.activation](h)
    h = nn.with_logical_constraint(h, ('batch', 'length', 'mlp'))
    drop = lambda x: Dropout(self.dropout)(x, deterministic=deterministic)
    out = lambda name: dense(hidden, name, ('mlp', 'embed'), dtype=self.dtype)(h)
    w_new = layer_norm(self.ln_eps, 'token_ln')(w + drop(out('token_out')))
    e_new = layer_norm(self.ln_eps, 'entity_ln')(e + drop(out('entity_out')))
    return w_new, e_new * on  # a token without an entity has no entity state


class Aggregator(nn.Module):
  """One K-encoder layer: attention over tokens, over entities, then Fusion."""
  heads: int
  head_dim: int
  ff: int
  activation: str = 'gelu'
  dropout: float = 0.1
  attention_dropout: float = 0.1
  ln_eps: float = 1e-12
  dtype: Any = jnp.float32
  attention: str = 'einsum'

  @nn.compact
  def __call__(self, w, e, mask, entity_mask, has_entity, deterministic: bool = True):
    def attend(x, m, name):
      a = MultiHeadAttention(self.heads, self.head_dim, self.attention_dropout, self.dtype,
                             self.attention, name=name)(x, x, m, deterministic=deterministic)
      x = x + Dropout(self.dropout)(a, deterministic=deterministic)
      return nn.with_logical_constraint(layer_norm(self.ln_eps, f'{name}_ln')(x),
                                        ('batch', 'length', 'embed'))
    w = attend(w, mask, 'self_attention')
    e = attend(e, entity_mask, 'entity_attention')
    return Fusion(self.ff, self.activation, self.dropout, self.ln_eps, self.dtype,
                  name='fusion')(w, e, has_entity, deterministic)


class KnowledgeEncoder(nn.Module):
  """T-encoder + K-encoder: (token states [B, L, H], entity states [B, L, H])."""
  text: encoder_lib.Encoder  # the T-encoder (N = text.layers BERT layers)
  knowledge_layers: int  # M aggregator layers
  num_entities: int  # graph entities; the table has num_entities + 1 rows (row 0 = none)
  entity_dim: int  # TransE vector size
  entity_table: str = 'frozen'  # ENTITY_TABLES

  def setup(self):
    t = self.text
    self.entity_projection = dense(t.hidden, 'entity_projection', ('kv', 'embed'),
                                   dtype=t.dtype)
    self.aggregators = [Aggregator(t.heads, t.hidden // t.heads, t.ff, t.activation, t.dropout,
                                   t.attention_dropout, t.ln_eps, t.dtype, t.attention,
                                   name=f'aggregator_{i}') for i in range(self.knowledge_layers)]

  @nn.compact
  def entity_vectors(self, ids, table):
    """Vectors [..., entity_dim] of entity ids: rows of the frozen `table` (the TransE
    vectors the objective passes from the loop's extras), or of the trained parameter that
    was initialised from it (flax traces the initialiser's shape on every call, so the
    table is passed either way)."""
    if table is None:
      raise UserError('the knowledge encoder needs entity_table (the objective passes the '
                      "loop's extras['entities'], the TransE vectors)")
    if self.entity_table == 'trained':
      table = self.param('entities', P(lambda rng: jnp.asarray(table, jnp.float32),
                                       ('vocab', 'kv')))
    return jnp.take(table, ids, axis=0, mode='clip')

  def __call__(self, tokens, positions, mask, *, entities, entity_table=None, token_types=None,
               deterministic: bool = True):
    w = self.text(tokens, positions, mask, token_types=token_types, deterministic=deterministic)
    has_entity = entities > 0
    e = self.entity_projection(self.entity_vectors(entities, entity_table))
    e = e * has_entity[..., None].astype(e.dtype)
    entity_mask = masks.padding_mask(has_entity)
    for layer in self.aggregators:
      w, e = layer(w, e, mask, entity_mask, has_entity, deterministic)
    return w, e


class ErnieLM(nn.Module):
  """Pre-training heads on the knowledge encoder: MLM (tied), NSP (pooled [CLS]) and dEA."""
  backbone: KnowledgeEncoder

  @nn.compact
  def __call__(self, tokens, positions, mask, *, entities, entity_table=None, token_types=None,
               predict_positions=None, candidates=None, deterministic: bool = True) -> dict:
    """{'mlm': [B, P, V] at predict_positions, 'nsp': [B, 2], and with candidates (entity
    ids [C]) 'dea': [B, L, C], each token's scores over the batch's candidate entities}."""
    b, t = self.backbone, self.backbone.text
    w, _ = b(tokens, positions, mask, entities=entities, entity_table=entity_table,
             token_types=token_types, deterministic=deterministic)
    out = {}
    at = w if predict_positions is None else jnp.take_along_axis(w, predict_positions[..., None], 1)
    out['mlm'] = MlmHead(t.vocab_size, t.activation, t.ln_eps, t.dtype, name='mlm_head')(
        at, t.embeddings.attend)
    pooled = jnp.tanh(dense(t.hidden, 'pooler', dtype=t.dtype)(w[:, 0]))
    out['nsp'] = dense(2, 'nsp', ('mlp', 'classes'), dtype=t.dtype)(pooled)
    if candidates is not None:  # thunlp's entity head: transform, then dot with entity vectors
      x = dense(b.entity_dim, 'dea_transform', ('embed', 'kv'), dtype=t.dtype)(w)
      x = layer_norm(t.ln_eps, 'dea_ln')(ACTIVATIONS[t.activation](x))
      vectors = b.entity_vectors(candidates, entity_table)
      out['dea'] = precision.einsum('bld,cd->blc', x, vectors, t.dtype)
    return out


class ErnieClassifier(nn.Module):
  """Fine-tuning head: the states at K marker tokens, concatenated, through a tanh pooler
  and a linear layer (ERNIE's entity typing / relation classification)."""
  backbone: KnowledgeEncoder
  num_classes: int
  dropout: float = 0.1

  @nn.compact
  def __call__(self, tokens, positions, mask, *, entities, markers, entity_table=None,
               token_types=None, deterministic: bool = True):
    """markers [B, K]: positions of the K opening marker tokens of each row -> logits."""
    t = self.backbone.text
    w, _ = self.backbone(tokens, positions, mask, entities=entities, entity_table=entity_table,
                         token_types=token_types, deterministic=deterministic)
    x = jnp.take_along_axis(w, markers[..., None], 1).reshape(w.shape[0], -1)
    x = jnp.tanh(dense(t.hidden, 'marker_pooler', ('mlp', 'embed'), dtype=t.dtype)(x))
    x = Dropout(self.dropout)(x, deterministic=deterministic)
    return dense(self.num_classes, 'classifier', ('embed', 'classes'), dtype=t.dtype)(x)


def config() -> ml_collections.ConfigDict:
  """The encoder's fields (model.layers = the T-encoder's N) plus the K-encoder's."""
  c = encoder_lib.config()
  c.name = 'ernie'
  c.knowledge_layers = 1  # M aggregator layers after the N T-encoder layers
  c.num_entities = -1  # graph entities; -1 = the graph's count (the ernie jobs set it)
  c.entity_dim = -1  # TransE vector size; -1 = the export's (the ernie jobs set it)
  c.entity_table = 'frozen'  # frozen TransE vectors (loop extras) | trained (init from TransE)
  c.num_classes = 0  # ernie_classifier: classes of the fine-tuning task (the job sets it)
  return c


def build(mc, vocab_size: int) -> nn.Module:
  """`ernie` (pre-training heads) or `ernie_classifier` (marker-pooling head)."""
  if not mc.post_ln:
    raise UserError('model.post_ln=False: the knowledge encoder is post-LN (BERT, ERNIE); set '
                    'model.post_ln=True')
  if mc.entity_table not in ENTITY_TABLES:
    raise UserError(f'model.entity_table={mc.entity_table!r}: use one of {ENTITY_TABLES}')
  for field in ('num_entities', 'entity_dim'):
    if mc[field] <= 0:
      raise UserError(f'model.{field}={mc[field]}: the ernie jobs set it from the graph and the '
                      'TransE export; build the model through plm/jobs/ernie.py or set it > 0')
  if mc.knowledge_layers < 1:
    raise UserError(f'model.knowledge_layers={mc.knowledge_layers}: ERNIE has at least one '
                    'aggregator layer')
  backbone = KnowledgeEncoder(encoder_lib.build_encoder(mc, vocab_size), mc.knowledge_layers,
                              mc.num_entities, mc.entity_dim, mc.entity_table)
  if mc.name == 'ernie_classifier':
    if mc.num_classes < 2:
      raise UserError(f'model.num_classes={mc.num_classes}: a classifier needs 2+ classes')
    return ErnieClassifier(backbone, mc.num_classes, mc.dropout)
  return ErnieLM(backbone)
