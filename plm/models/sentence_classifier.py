"""A classifier on any plm model's sentence vectors: LASER's zero-shot transfer protocol
(Artetxe & Schwenk, 2019): labels in one language, tests in others, one embedding space.

The wrapped model's `sentence_vectors(tokens, langs, layer=, pooling=, pad_id=)` [B, D]
(LASER: the max-pooled BiLSTM; a Transformer: `layer` pooled by `pooling`) feed an MLP:
Dense(head_hidden) + tanh + dropout, then Dense(num_classes) logits (float32).
`sentence_vectors` runs the wrapped model deterministically (no dropout), frozen or not:
each sentence has one vector, as in LASER's protocol.

Params: {'sentence_model': the wrapped model's own tree, only the parts its
sentence_vectors reads (LASER's and XLM's 'encoder'), 'hidden', 'classifier'}. So a
pre-trained run's params map by their top-level names (`init_map`), and freezing is one
name (train.Task.frozen = ('sentence_model',)).
"""
import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import ml_collections

from plm.errors import UserError
from plm.models import laser
from plm.nn.dropout import Dropout

P = nn.with_logical_partitioning
PART = 'sentence_model'  # the top-level params of the wrapped model
_KERNEL = nn.initializers.lecun_normal()
# init_from is checked by init_map (the wrapped model's own shapes), not by fields.
SHAPE_FIELDS = ('num_languages',)


class SentenceClassifier(nn.Module):
  """MLP over `sentence_model.sentence_vectors`: logits [B, num_classes] (float32)."""
  sentence_model: nn.Module  # any plm model (plm/models/__init__.py REGISTRY)
  num_classes: int
  head_hidden: int = 256  # units of the MLP's hidden layer; 0 = a linear classifier
  dropout: float = 0.1  # on the hidden layer's output
  layer: int = -1  # the wrapped model's states to pool (embed.layer)
  pooling: str = 'max'  # mean | max | first (embed.pooling); LASER's is always max
  pad_id: int = 0  # plm's pad id (plm.data.tokenizer.PAD_ID; rows are right-padded)

  @nn.compact
  def __call__(self, tokens, positions=None, mask=None, *, langs=None, token_types=None,
               tasks=None, deterministic: bool = True) -> jax.Array:
    """Logits [B, num_classes] of right-padded `tokens` [B, L]; `langs` [B, L] reach models
    with language embeddings (LASER's encoder ignores them). Positions, mask, token types and
    tasks are not needed: sentence_vectors lays out its own."""
    del positions, mask, token_types, tasks
    x = self.sentence_vectors(tokens, langs, layer=self.layer, pooling=self.pooling,
                              pad_id=self.pad_id)
    # LeCun-normal, not BERT's std 0.02: unit-scale activations from unnormalized vectors, so
    # a head alone learns within a few hundred steps.
    if self.head_hidden:
      x = nn.Dense(self.head_hidden, name='hidden', kernel_init=P(_KERNEL, ('embed', 'mlp')),
                   bias_init=P(nn.initializers.zeros, ('mlp',)))(x)
      x = Dropout(self.dropout)(jnp.tanh(x), deterministic=deterministic)
    logits = nn.Dense(self.num_classes, name='classifier',
                      kernel_init=P(_KERNEL, ('mlp', 'classes')),
                      bias_init=P(nn.initializers.zeros, ('classes',)))(x)
    return logits.astype(jnp.float32)

  def sentence_vectors(self, tokens, langs=None, **options):
    """The wrapped model's sentence vectors [B, D] (float32)."""
    return self.sentence_model.sentence_vectors(tokens, langs, **options)

  @property
  def layers(self) -> int:
    """Layers of the wrapped sentence encoder (plm.evaluate.embedding.num_layers)."""
    inner = self.sentence_model
    return inner.layers if hasattr(inner, 'layers') else inner.encoder.layers


def config() -> ml_collections.ConfigDict:
  """The classifier's fields; the classify job fills them from the pre-trained run's config."""
  c = ml_collections.ConfigDict()
  c.name = 'sentence_classifier'  # plm.models.NAMES
  # The wrapped model's own fields, its name included: the pre-trained run's config.model.
  c.sentence_model = laser.config()
  # Language ids fed to the wrapped model: its own num_languages (the classify job copies it;
  # train.setup drops `langs` from batches when 0).
  c.num_languages = 0
  c.num_classes = 2  # classes of the task; the classify job sets it from its data
  c.head_hidden = 256  # MLP hidden units (finetune.classifier_hidden); 0 = linear classifier
  c.dropout = 0.1  # on the MLP's hidden layer (the classify job copies model.dropout)
  c.layer = -1  # the wrapped model's states to pool (the classify job copies embed.layer)
  c.pooling = 'max'  # mean | max | first (the classify job copies embed.pooling)
  return c


def build(mc, vocab_size: int) -> SentenceClassifier:
  from plm import models  # pylint: disable=g-import-not-at-top  # plm.models imports this file
  inner = mc.sentence_model
  if inner.get('name') in (None, 'sentence_classifier'):
    raise UserError(f"model.sentence_model.name={inner.get('name')!r}: a sentence classifier "
                    "wraps a pre-trained model (its config.model, e.g. 'laser' or 'encoder_lm')")
  if mc.num_classes < 2:
    raise UserError(f'model.num_classes={mc.num_classes}: a classifier needs at least 2 classes')
  if mc.head_hidden < 0:
    raise UserError(f'model.head_hidden={mc.head_hidden} must be >= 0 (0 = linear classifier)')
  if mc.num_languages != inner.get('num_languages', 0):
    raise UserError(f'model.num_languages={mc.num_languages} but model.sentence_model.'
                    f"num_languages={inner.get('num_languages', 0)}; they must be equal (the "
                    'language ids go to the wrapped model)')
  if not 0.0 <= mc.dropout < 1.0:
    raise UserError(f'model.dropout={mc.dropout} must be in [0, 1)')
  return SentenceClassifier(models.build(inner, vocab_size), mc.num_classes, mc.head_hidden,
                            mc.dropout, mc.layer, mc.pooling)


def init_map(saved_model: dict, mc, init_from: str):
  """train.Task.init_map from a checkpoint of `saved_model` (its meta's model config):
  the sentence model's params are the saved run's top-level parts of the same names
  (LASER's or XLM's 'encoder'; its decoder or LM head is left out), the MLP is fresh.

  A checkpoint of another model than model.sentence_model names is refused here, before
  any array is read; one of the same model but other shapes when the map runs.
  """
  saved_name, name = saved_model.get('name'), mc.sentence_model.name
  if saved_name != name:
    raise UserError(f'config.init_from={init_from!r} holds a {saved_name!r} model, but this '
                    f'classifier wraps a {name!r} model (config.model.name); use the config '
                    'the pre-trained run used (its config.json)')

  def take(saved, fresh):
    part = fresh[PART]
    if missing := sorted(set(part) - set(saved)):
      raise UserError(f'config.init_from={init_from!r} holds no {missing} parameters (it has '
                      f'{sorted(saved)}); the {name!r} sentence model needs {sorted(part)}')
    taken = {k: saved[k] for k in part}
    flat = lambda tree: {'/'.join(k): (v.shape, v.dtype)
                         for k, v in flax.traverse_util.flatten_dict(tree).items()}
    got, want = flat(taken), flat(part)
    if got != want:
      diff = [f'{k} {got.get(k, ("missing",))[0]} (wants {want.get(k, ("none",))[0]})'
              for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
      raise UserError(f'config.init_from={init_from!r} holds a {name!r} model of other shapes '
                      f'({"; ".join(diff[:3])}); set model.* to the pre-trained run\'s (its '
                      'config.json)')
    return {**fresh, PART: taken}

  return take
