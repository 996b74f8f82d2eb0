"""Logical-axis rules: a rule table that misses or misspells an axis is an error."""
import jax
import jax.numpy as jnp
import pytest

from plm import models, partitioning
from plm.models.encoder import Encoder, EncoderLM


@pytest.fixture(scope='module')
def boxed_params():
  model = EncoderLM(Encoder(vocab_size=40, layers=1, hidden=16, heads=2, ff=32, max_len=8))
  ids = jnp.zeros((2, 8), jnp.int32)
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), ids, ids, None))


def test_default_rules_cover_the_model(boxed_params):
  partitioning.check_logical_axes(partitioning.DEFAULT_RULES, boxed_params)


def test_missing_rule_is_named(boxed_params):
  rules = tuple(r for r in partitioning.DEFAULT_RULES if r[0] != 'mlp')
  with pytest.raises(ValueError, match=r"no rule for the logical axes \['mlp'\]; add"):
    partitioning.check_logical_axes(rules, boxed_params)


def test_misspelt_rule_is_named(boxed_params):
  rules = partitioning.DEFAULT_RULES + (('emebd', 'fsdp'),)
  with pytest.raises(ValueError, match=r"unknown logical axes \['emebd'\]; the model has"):
    partitioning.check_logical_axes(rules, boxed_params)


@pytest.mark.parametrize('name', models.NAMES)
def test_default_rules_cover_every_registered_model(name):
  """Every model `model.name` can build has a rule for each of its logical axes."""
  mc = models.config(name)
  # The Transformers take a size from the table; LASER's LSTMs have their own small defaults.
  mc.update({k: v for k, v in dict(size='test', max_len=8).items() if k in mc})
  if name == 'classifier':
    mc.num_classes = 3
  if name == 'transe':  # a graph's tables: 40 entities, 3 relations
    mc.update(num_entities=40, num_relations=3)
  kwargs = {}
  if name in ('ernie', 'ernie_classifier'):  # a trained entity table, so its axes are checked too
    mc.update(num_entities=10, entity_dim=4, entity_table='trained',
              num_classes=3 if name == 'ernie_classifier' else 0)
    kwargs = dict(entities=jnp.ones((2, 8), jnp.int32), entity_table=jnp.zeros((11, 4)))
    kwargs.update(markers=jnp.zeros((2, 2), jnp.int32)) if name == 'ernie_classifier' else \
        kwargs.update(candidates=jnp.arange(3))
  if name == 'ernie2':  # two task embeddings, a vocabulary head and a 2-class head
    mc.update(num_tasks=2, task_heads=(('knowledge_masking', 0), ('capitalization', 2)))
    kwargs = dict(tasks=jnp.zeros((2, 8), jnp.int32))
  model = models.build(mc, 40)
  ids = jnp.zeros((2, 8), jnp.int32)
  # An encoder-decoder reads a source and a target; TransE a triple; the others one sequence.
  inputs = (ids, ids, None) * 2 + (None,) if name in ('seq2seq', 'laser') else (ids, ids, None)
  if name == 'transe':
    inputs = (ids[:, 0],) * 3
  boxed = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *inputs, **kwargs))
  partitioning.check_logical_axes(partitioning.DEFAULT_RULES, boxed)
  if name == 'classifier':  # the head's own axis is covered too, not just the encoder's
    rules = tuple(r for r in partitioning.DEFAULT_RULES if r[0] != 'classes')
    with pytest.raises(ValueError, match=r"no rule for the logical axes \['classes'\]"):
      partitioning.check_logical_axes(rules, boxed)
