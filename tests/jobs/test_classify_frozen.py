"""The classify job on frozen sentence vectors (LASER's zero-shot protocol): a LASER or XLM
run's sentence model under an MLP, trained in English and tested in English and Spanish;
the frozen params never move, the head learns, another model's checkpoint is refused."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import plm
from plm import checkpoint, configlib, models, run, train
from plm import workdir as workdir_lib
from plm.data import labelled
from plm.data.rows import Rows
from plm.jobs import classify
from plm.models import sentence_classifier
from plm.models.classifier import EncoderClassifier
from plm.models.sentence_classifier import SentenceClassifier

pytestmark = pytest.mark.model

same = lambda a, b: jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, a, b))


def laser_config(tiny_config):
  """A small LASER on configs/xlm.py:tiny's data and vocabulary; fine-tuning settings of
  :tiny (64-token verses, the longer ones left out)."""
  c = configlib.base(languages=('en', 'es'))
  c.model = models.config('laser')
  c.model.update(embed_dim=16, layers=1, hidden=16, decoder_hidden=16, num_languages=2,
                 lang_dim=4)
  c.data.tfds_dir, c.data.vocab_path = tiny_config.data.tfds_dir, tiny_config.data.vocab_path
  c.data.vocab_size = tiny_config.data.vocab_size
  c.embed.pooling = 'max'  # LASER's sentence vector
  c.finetune.update(seq_len=64, skip_long=True, batch_size=32, lr=1e-2, warmup_steps=5,
                    classifier_hidden=32, freeze_encoder=True, test_languages=('en', 'es'))
  c.train.checkpoint_every = 1000
  return c


def save_run(config, workdir, init_inputs, task) -> dict:
  """A run directory like those plm.train leaves (config.json; checkpoints/ with the meta
  init_from checks) holding only params: the model's initialized from seed 7 (returned)."""
  tokenizer = workdir_lib.load_tokenizer(config, '')
  model = models.build(config.model, tokenizer.vocab_size)
  init = jax.jit(lambda: nn.unbox(model.init(jax.random.PRNGKey(7), *init_inputs[0],
                                              **init_inputs[1]))['params'])
  params = jax.device_get(init())
  workdir_lib.write_config(config, workdir_lib.workdir_path(workdir))
  mngr = checkpoint.manager(workdir)
  checkpoint.save(mngr, 5, dict(params=params), dict(
      vocab=tokenizer.fingerprint, data='none', vocab_size=tokenizer.vocab_size,
      model=config.model.to_dict(), task=task, data_step=5))
  checkpoint.wait(mngr, 5)
  return params


@pytest.fixture(scope='module')
def laser_run(tiny_config, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('laser'))
  ids = jnp.ones((2, 6), jnp.int32)
  params = save_run(laser_config(tiny_config), workdir,
                    ((ids,), dict(tgt_tokens=ids, tgt_langs=ids)), 'mt')
  return workdir, params


@pytest.fixture(scope='module')
def xlm_run(tiny_config, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('xlm'))
  config = run.resolve(tiny_config.copy_and_resolve_references())
  ids = jnp.ones((2, 6), jnp.int32)
  return workdir, save_run(config, workdir, ((ids, ids * 0, None), {}), 'pretrain')


def test_frozen_laser_classify_end_to_end(tiny_config, laser_run, tmp_path, capsys):
  laser_dir, saved = laser_run
  config = laser_config(tiny_config)
  config.job, config.init_from, config.finetune.steps = 'classify', f'{laser_dir}/checkpoints', 20
  workdir = str(tmp_path / 'cls')
  results = classify.classify_job(config, workdir)
  out = capsys.readouterr().out
  assert f'init_from: sentence_model from step 5 of {laser_dir}/checkpoints; ' in out
  assert 'MLP on the frozen laser sentence vectors' in out
  # A table per test language: accuracy over every verse that fits, and the majority baseline.
  assert results['step'] == 20
  assert set(results['test']) == set(results['majority_share']) == {'en', 'es'}
  for lang in ('en', 'es'):
    t = results['test'][lang]['classify']
    assert t['predictions'] > 1000 and 0.0 <= t['accuracy'] <= 1.0
    assert f'| {lang} | {t["accuracy"]:.3f} |' in out
  # config.json describes the classifier: plm.load rebuilds it and its newest params, whose
  # sentence model is the LASER checkpoint's encoder, bit for bit (its decoder left out).
  loaded = plm.load(workdir)
  assert isinstance(loaded.model, SentenceClassifier) and loaded.step == 20
  assert loaded.config.model.sentence_model.name == 'laser'
  params = loaded.params
  assert set(params) == {'sentence_model', 'hidden', 'classifier'}
  assert set(params['sentence_model']) == {'encoder'}
  assert same(params['sentence_model']['encoder'], saved['encoder'])


def fake_genre_set(vocab_size):
  """labelled.genre_set's layout on random verses ([bos] ids [eos] pad, 3 to 20 ids), each
  labelled by its first id: learnable, and nothing read from the Bible."""
  def genre_set(tokenizer, language, lang_id, split, fc, data_dir):
    del language, data_dir
    rng = np.random.RandomState({'train': 0, 'validation': 1, 'test': 2}[split] + 10 * lang_id)
    tokens = np.zeros((96, fc.seq_len), np.int32)
    for row in tokens:
      n = rng.randint(3, 21)
      row[:n + 2] = [tokenizer.bos_id, *rng.randint(4, vocab_size, n), tokenizer.eos_id]
    valid = (tokens > 0).astype(np.int32)
    return Rows(dict(tokens=tokens, segment_ids=valid, positions=np.where(valid, np.arange(
        fc.seq_len), 0), langs=np.full(tokens.shape, lang_id), labels=tokens[:, 1] % 6))
  return genre_set


@pytest.mark.parametrize('family', ['laser', 'encoder_lm'])
def test_frozen_sentence_model_stays_and_the_head_learns(family, tiny_config, laser_run, xlm_run,
                                                          tmp_path, monkeypatch):
  """LASER and XLM under one protocol (XLM: its mean-pooled last layer, with language ids):
  steps on one batch move the head until it fits the batch better, and leave the sentence
  model as the checkpoint holds it, with no Adam state for it; the state saves and restores."""
  if family == 'laser':
    (workdir, saved), config = laser_run, laser_config(tiny_config)
  else:
    (workdir, saved), config = xlm_run, tiny_config.copy_and_resolve_references()
    config.finetune.update(freeze_encoder=True, classifier_hidden=32)
  config.job, config.init_from = 'classify', f'{workdir}/checkpoints'
  config.finetune.update(steps=30, warmup_steps=0, lr=3e-2)
  config = run.finetune_config(run.resolve(config))
  tokenizer = workdir_lib.open_tokenizer(config, workdir)
  monkeypatch.setattr(labelled, 'genre_set', fake_genre_set(tokenizer.vocab_size))
  task = classify.make_task(config, tokenizer)
  mc = task.model_config
  assert task.frozen == ('sentence_model',) and mc.sentence_model.name == family
  assert mc.num_languages == 2 and (task.heldout('test')['es'].arrays['langs'] == 1).all()
  assert mc.pooling == ('max' if family == 'laser' else 'mean')
  s = train.setup(config, task)
  state = train.restore_or_init(config, s, checkpoint.manager(str(tmp_path / 'm')))
  start = jax.device_get(state['params'])
  assert set(start['sentence_model']) == {'encoder'}  # LASER's decoder, XLM's MLM head left out
  assert same(start['sentence_model']['encoder'], saved['encoder'])
  fresh = jax.device_get(s.init(jax.random.PRNGKey(config.seed), s.extras)['params'])
  assert not same(fresh['sentence_model']['encoder'], saved['encoder'])  # taken, not drawn
  head_size = sum(x.size for k in ('hidden', 'classifier')
                  for x in jax.tree_util.tree_leaves(start[k]))
  opt_size = sum(x.size for x in jax.tree_util.tree_leaves(state['opt_state']))
  assert head_size * 2 <= opt_size <= head_size * 2 + 4  # Adam's two moments and counters
  batch = s.put(task.train_rows.batch(0, config.train.batch_size, seed=0))
  assert 'langs' in batch  # language ids reach XLM's language embeddings (LASER ignores them)
  rng = jax.random.PRNGKey(0)
  mean_loss = lambda params: (lambda m: float(m['classify/loss'] / m['classify/weight']))(
      jax.device_get(s.eval_step(params, s.extras, batch, rng)))
  before = mean_loss(state['params'])
  grads = jax.grad(lambda p: s.eval_step(p, s.extras, batch, rng)['classify/loss'])(
      state['params'])
  head_norm = float(optax.global_norm({k: grads[k] for k in ('hidden', 'classifier')}))
  with jax.set_mesh(s.mesh):
    for step in range(30):
      state, metrics = s.train_step(state, s.extras, batch)
      if step == 0 and family == 'encoder_lm':  # no dropout: train mode is eval mode
        # The sentence model is a constant of the loss: the gradient is the head's alone.
        np.testing.assert_allclose(float(metrics['grad_norm']),
                                   head_norm / float(batch['labels'].shape[0]), rtol=1e-4)
  after = mean_loss(state['params'])
  assert after < before - 0.2, (before, after)  # measured: LASER -0.38, XLM -1.5
  end = jax.device_get(state['params'])
  assert same(end['sentence_model'], start['sentence_model'])
  for k in ('hidden', 'classifier'):
    assert not np.array_equal(end[k]['kernel'], start[k]['kernel']), k
  # The frozen run's state (no optimizer state for the sentence model) saves and restores.
  mngr = checkpoint.manager(str(tmp_path / 'resume'))
  checkpoint.save(mngr, 30, state, dict(s.meta, data_step=30))
  checkpoint.wait(mngr, 30)
  restored, _ = checkpoint.restore_latest(mngr, s.abstract_state, s.state_sharding)
  assert same(jax.device_get(restored), jax.device_get(state))


def test_which_model_each_setting_trains(tiny_config, laser_run, monkeypatch):
  """LASER is always an MLP on its sentence vectors (unfrozen: the BiLSTM trains too); the
  encoder families fine-tune under BERT's pooler head unless frozen."""
  config = laser_config(tiny_config)
  config.init_from, config.finetune.freeze_encoder = f'{laser_run[0]}/checkpoints', False
  config = run.finetune_config(run.resolve(config))
  tokenizer = workdir_lib.open_tokenizer(config, laser_run[0])
  monkeypatch.setattr(labelled, 'genre_set', fake_genre_set(tokenizer.vocab_size))
  task = classify.make_task(config, tokenizer)
  assert isinstance(task.model, SentenceClassifier) and task.frozen == ()
  assert task.init_map is not None and task.model_config.head_hidden == 32
  xlm = run.resolve(tiny_config.copy_and_resolve_references())
  task = classify.make_task(xlm, tokenizer)
  assert isinstance(task.model, EncoderClassifier) and task.frozen == () and not task.init_map


def test_checkpoint_of_another_model_is_refused_by_name(tiny_config, xlm_run, laser_run):
  config = laser_config(tiny_config)
  config.job, config.init_from = 'classify', f'{xlm_run[0]}/checkpoints'
  tokenizer = workdir_lib.load_tokenizer(config, '')
  with pytest.raises(ValueError, match="holds a 'encoder_lm' model, but this classifier wraps "
                                       "a 'laser' model"):
    classify.make_task(run.finetune_config(run.resolve(config)), tokenizer)
  # A LASER checkpoint of other sizes: refused naming the parameter and both shapes.
  config.model.hidden = 8
  mc = classify.sentence_model_config(config, 6)
  meta_model = laser_config(tiny_config).model.to_dict()
  take = sentence_classifier.init_map(meta_model, mc, 'x')
  model = models.build(mc, tokenizer.vocab_size)
  fresh = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.PRNGKey(0), jnp.ones(
      (2, 5), jnp.int32)))['params'])
  with pytest.raises(ValueError, match=r"holds a 'laser' model of other shapes \(encoder/"):
    take(laser_run[1], fresh)


def test_frozen_features_are_deterministic():
  """Dropout never reaches the sentence model: in train mode (head dropout 0) the logits
  are those of eval mode."""
  mc = models.config('sentence_classifier')
  mc.sentence_model.update(dropout=0.5, embed_dim=8, hidden=8, decoder_hidden=8)
  mc.update(num_classes=3, head_hidden=4, dropout=0.0)
  model = models.build(mc, 30)
  tokens = jnp.asarray([[2, 5, 6, 1, 0], [2, 7, 1, 0, 0]])
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), tokens)
  logits = jax.jit(lambda v, deterministic: model.apply(
      v, tokens, deterministic=deterministic, rngs={'dropout': jax.random.PRNGKey(1)}),
                   static_argnums=1)
  np.testing.assert_array_equal(logits(variables, False), logits(variables, True))


def test_freeze_keeps_frozen_parts_bitwise_and_without_state():
  """train.freeze: AdamW with weight decay moves every part but the frozen one, which holds
  no Adam moments; naming a part the params lack is an error."""
  params = {'encoder': {'kernel': jnp.ones((3, 2)), 'bias': jnp.ones(2)},
            'head': {'kernel': jnp.ones((2, 2))}}
  tx = train.freeze(optax.adamw(0.1, weight_decay=0.5), ('encoder',))
  opt_state = tx.init(params)
  assert sum(x.size for x in jax.tree_util.tree_leaves(opt_state)) == 2 * 4 + 1
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  p = params
  for _ in range(3):
    updates, opt_state = tx.update(grads, opt_state, p)
    p = optax.apply_updates(p, updates)
  assert same(p['encoder'], params['encoder'])
  assert not np.array_equal(p['head']['kernel'], params['head']['kernel'])
  with pytest.raises(ValueError, match=r"Task.frozen names \['encodr'\]"):
    train.freeze(optax.adamw(0.1), ('encodr',)).init(params)
