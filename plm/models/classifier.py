"""Sequence classification on top of the encoder (BERT / UNILM fine-tuning).

Logits come from the first token's hidden state through BERT's pooler
(Dense + tanh), dropout, then a Dense to the classes. Call it with a
bidirectional `masks.padding_mask(valid)`; like every plm model it builds no
mask itself.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from plm.errors import UserError
from plm.models import encoder as encoder_lib
from plm.models.encoder import Encoder
from plm.nn import precision
from plm.nn.attention import dense_init
from plm.nn.dropout import Dropout

P = nn.with_logical_partitioning
# Fix the param shapes; init_from an encoder run must match them (its num_classes is new).
SHAPE_FIELDS = encoder_lib.SHAPE_FIELDS


class EncoderClassifier(nn.Module):
  """Encoder + pooler + classification layer: logits [B, num_classes]."""
  encoder: Encoder
  num_classes: int
  dropout: float = 0.1

  @nn.compact
  def __call__(self, tokens, positions, mask, *, token_types=None, langs=None, tasks=None,
               deterministic: bool = True) -> jax.Array:
    x = self.encoder(tokens, positions, mask, token_types=token_types, langs=langs,
                     tasks=tasks, deterministic=deterministic)
    # Row 0 is [bos]/[CLS]: under a padding mask it has seen every valid token.
    mixed = precision.dot_general(self.encoder.dtype)
    pooled = nn.Dense(x.shape[-1], dot_general=mixed, name='pooler',
                      kernel_init=P(dense_init(), ('embed', 'mlp')),
                      bias_init=P(nn.initializers.zeros, ('mlp',)))(x[:, 0])
    pooled = Dropout(self.dropout)(jnp.tanh(pooled), deterministic=deterministic)
    return nn.Dense(self.num_classes, dot_general=mixed, name='classifier',
                    kernel_init=P(dense_init(), ('mlp', 'classes')),
                    bias_init=P(nn.initializers.zeros, ('classes',)))(pooled)

  def sentence_vectors(self, tokens, langs=None, **options):
    """The encoder's sentence vectors [B, H] (Encoder.sentence_vectors)."""
    return self.encoder.sentence_vectors(tokens, langs, **options)


def config():
  """The encoder's fields plus the number of classes (set by the fine-tuning task)."""
  c = encoder_lib.config()
  c.num_classes = 0  # classes of the task; the classify job sets it from its data
  return c


def build(mc, vocab_size: int) -> EncoderClassifier:
  if mc.num_classes < 2:
    raise UserError(f'model.num_classes={mc.num_classes}: a classifier needs at least 2 classes')
  return EncoderClassifier(encoder_lib.build_encoder(mc, vocab_size), mc.num_classes, mc.dropout)
