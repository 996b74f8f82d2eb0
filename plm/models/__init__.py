"""Whole architectures, picked by `config.model.name`.

Each model module owns its config fields (`config()`: every field with its
default and meaning) and a `build(model_config, vocab_size)`. Adding a model is
a new file plus one REGISTRY line. A field the chosen model does not have is an
error naming the close match, never ignored.
"""
import difflib

import flax.linen as nn
import jax
import ml_collections

from plm.errors import UserError
from plm.models import (classifier, encoder, ernie2, knowledge_encoder, laser,
                        sentence_classifier, seq2seq, transe)

# name -> module with config() and build(model_config, vocab_size)
REGISTRY = {
    'encoder': encoder,  # hidden states [B, L, H] (sentence vectors, features)
    'encoder_lm': encoder,  # + the tied vocabulary head (BERT/XLM/UNILM pre-training)
    'classifier': classifier,  # + a pooler and a classification layer (fine-tuning)
    'seq2seq': seq2seq,  # Transformer encoder-decoder (MASS, translation)
    'laser': laser,  # BiLSTM max-pool sentence encoder + LSTM decoder (LASER)
    'sentence_classifier': sentence_classifier,  # an MLP on any model's sentence vectors
    'transe': transe,  # TransE entity and relation tables of a knowledge graph (ERNIE)
    'ernie': knowledge_encoder,  # T-encoder + K-encoder (entity fusion) + MLM/NSP/dEA heads
    'ernie_classifier': knowledge_encoder,  # the same, pooled at marker tokens (fine-tuning)
    'ernie2': ernie2,  # shared encoder + task embeddings + a head per task (ERNIE 2.0)
}
NAMES = tuple(REGISTRY)
# How a model computes, not what it is: a checkpoint serves every setting of these.
COMPUTE_FIELDS = encoder.COMPUTE_FIELDS
# Fields a checkpoint saved before they existed lacks: absent equals this default
# (plm/meta.py). Each model module declares its own DEFAULT_WHEN_ABSENT.
DEFAULT_WHEN_ABSENT = {k: v for m in set(REGISTRY.values())
                       for k, v in getattr(m, 'DEFAULT_WHEN_ABSENT', {}).items()}


def _module(name: str):
  if name not in REGISTRY:
    near = difflib.get_close_matches(name, NAMES, n=1)
    raise UserError(f'model.name={name!r} is unknown' + (f' (did you mean {near[0]!r}?)'
                                                         if near else '') +
                    f'; use one of {NAMES}')
  return REGISTRY[name]


def config(name: str) -> ml_collections.ConfigDict:
  """The fields of model `name` with their defaults (plm/models/<file>.py documents each)."""
  c = _module(name).config()
  c.name = name
  return c


def check_fields(model_config) -> None:
  """Every field of `model_config` is one the named model reads."""
  known = set(config(model_config.name))
  if unknown := sorted(set(model_config) - known):
    hints = []
    for field in unknown:
      near = difflib.get_close_matches(field, sorted(known), n=1)
      hints.append(f'model.{field}' + (f' (did you mean model.{near[0]}?)' if near else ''))
    raise UserError(f"model.name={model_config.name!r} has no field {', '.join(hints)}; its "
                    f'fields are {sorted(known)}')


def shape_fields(name: str) -> tuple[str, ...]:
  """The fields of model `name` that fix its parameter shapes (its module's SHAPE_FIELDS):
  what config.init_from must match."""
  return _module(name).SHAPE_FIELDS


def has_vocabulary(name: str) -> bool:
  """Whether model `name` reads text through a vocabulary (its module's HAS_VOCABULARY,
  default True; TransE reads a graph's entity ids)."""
  return getattr(_module(name), 'HAS_VOCABULARY', True)


def unused_inputs(model_config) -> tuple[str, ...]:
  """Batch keys the model takes no input from: language ids, when it has no language
  embeddings (BERT, UNILM; model.num_languages=0 of any model)."""
  return () if model_config.get('num_languages', 0) else ('langs',)


def init_map(saved: dict, fresh: dict) -> dict:
  """`fresh` with each top-level part that `saved` holds with the same shapes replaced by
  the saved one (a pre-trained encoder under a new head). A bare Encoder tree (an `encoder`
  run, e.g. a converted checkpoint without an LM head) is this model's 'encoder' part."""
  if 'encoder' in fresh and 'encoder' not in saved and 'embeddings' in saved:
    saved = {'encoder': saved}
  shapes = lambda tree: jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), tree)
  take = [k for k in fresh if k in saved and shapes(saved[k]) == shapes(fresh[k])]
  if not take:
    raise UserError(f'config.init_from holds parameters {sorted(saved)}, none of which fit '
                    f'this model ({sorted(fresh)}) with the same shapes; start from a run of '
                    'the same model family and size (the config the pre-trained run used)')
  return {**fresh, **{k: saved[k] for k in take}}


def build(model_config, vocab_size: int) -> nn.Module:
  """The model named by `model.name`, built from its fields."""
  check_fields(model_config)
  return _module(model_config.name).build(model_config, vocab_size)
