"""A model family added from outside plm/: its model, objective, task and config live in
this file, and plm's own registry, loop, evaluation and run directory train, evaluate and
load it. Nothing under plm/ knows it exists (the loop knows no family)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import plm
from plm import meta as meta_lib
from plm import models, run, train
from plm import workdir as workdir_lib
from plm.data import mixing
from plm.objectives import base

pytestmark = pytest.mark.e2e


class BigramLM(nn.Module):
  """The next token from the current one alone: an embedding and a vocabulary layer."""
  vocab_size: int
  width: int

  @nn.compact
  def __call__(self, tokens, deterministic: bool = True):
    del deterministic  # no dropout
    x = nn.tanh(nn.Embed(self.vocab_size, self.width, name='embed')(tokens))
    return nn.Dense(self.vocab_size, name='out')(x)


class BigramFamily:
  """What plm.models.REGISTRY holds for a family: its fields, which of them fix the
  parameter shapes, and how to build it."""
  SHAPE_FIELDS = ('width',)

  @staticmethod
  def config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(width=48))  # embedding width

  @staticmethod
  def build(model_config, vocab_size: int) -> nn.Module:
    return BigramLM(vocab_size, model_config.width)


def next_token(rng, batch):
  """(inputs, ids, weights): each token predicts the one after it within its document."""
  del rng
  tokens, segments = batch['tokens'], batch['segment_ids']
  same_document = (segments[:, 1:] == segments[:, :-1]) & (segments[:, 1:] > 0)
  return dict(tokens=tokens[:, :-1]), tokens[:, 1:], same_document.astype(jnp.float32)


def make_task(config, tokenizer) -> train.Task:
  rows = mixing.make_train_dataset(config.data, tokenizer)
  counts = rows.token_counts(tokenizer.vocab_size)
  objective = base.token_objective('next', next_token,
                                   prior_logp=base.unigram_logp(counts, (tokenizer.pad_id,)))
  heldout = lambda split: {'en': mixing.monolingual_rows(config.data, tokenizer, split, 'en')}
  return train.Task('bigram', models.build(config.model, tokenizer.vocab_size), config.model,
                    objective, rows, heldout, meta=meta_lib.of_tokenizer(tokenizer))


@pytest.fixture
def bigram_config(tiny_config, monkeypatch):
  monkeypatch.setitem(models.REGISTRY, 'bigram', BigramFamily)
  config = tiny_config.copy_and_resolve_references()
  config.model = models.config('bigram')
  config.data.languages = ('en',)
  config.train.steps, config.train.eval_every, config.train.checkpoint_every = 150, 0, 50
  return run.resolve(config)


def test_a_family_defined_outside_plm_trains_evaluates_and_loads(bigram_config, tmp_path):
  config, workdir = bigram_config, str(tmp_path / 'run')
  tokenizer = workdir_lib.load_tokenizer(config, '')
  results = train.train_and_evaluate(config, workdir, make_task(config, tokenizer))
  test = results['test']['en']['next']
  # held out: it learned bigrams, far beyond predicting the most frequent token
  assert test['accuracy'] > test['unigram_accuracy'] + 0.05, test
  assert test['loss'] < test['unigram_loss'] - 0.5, test

  again = train.evaluate_checkpoint(config, workdir, make_task(config, tokenizer))
  assert again['step'] == 150 and again['test'] == results['test']

  loaded = plm.load(workdir)  # from config.json: the registry builds the family's model
  assert loaded.step == 150 and loaded.config.model.name == 'bigram'
  ids = np.asarray(tokenizer.encode(['In the beginning God created the heaven'])[0])
  logits = loaded.model.apply({'params': loaded.params}, ids[None])
  assert logits.shape == (1, len(ids), tokenizer.vocab_size)
  assert jax.tree_util.tree_structure(loaded.params) == jax.tree_util.tree_structure(
      {'embed': {'embedding': 0}, 'out': {'bias': 0, 'kernel': 0}})


def test_a_family_outside_plm_is_refused_a_checkpoint_of_another_width(bigram_config,
                                                                         tmp_path):
  config, workdir = bigram_config, str(tmp_path / 'run')
  config.train.steps = 2
  tokenizer = workdir_lib.load_tokenizer(config, '')
  train.train_and_evaluate(config, workdir, make_task(config, tokenizer))
  config.model.width = 32  # its own SHAPE_FIELDS, through the generic meta check
  with pytest.raises(plm.UserError, match='width'):
    train.evaluate_checkpoint(config, workdir, make_task(config, tokenizer))
