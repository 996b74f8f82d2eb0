"""A run directory is self-describing: config.json, results.json and plm.load(workdir)."""
import json

import jax
import numpy as np
import pytest

import plm
from plm import run, train
from plm import workdir as workdir_lib
from plm.jobs import pretrain

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def trained(tiny_config, tmp_path_factory):
  config = tiny_config.copy_and_resolve_references()
  config.train.steps, config.train.eval_every = 30, 0
  workdir = str(tmp_path_factory.mktemp('run'))
  return config, workdir, pretrain.train_job(config, workdir)


def test_results_json_is_the_returned_table(trained):
  _, workdir, results = trained
  with open(f'{workdir}/results.json') as f:
    written = json.load(f)
  assert written['test'] == results['test'] and written['step'] == 30
  assert set(written['test']) == {'en', 'es'} and set(written['test']['en']) == {'mlm'}


def test_evaluate_job_reproduces_the_final_table(trained):
  config, workdir, results = trained
  config = config.copy_and_resolve_references()
  config.job = 'evaluate'
  again = pretrain.evaluate_job(config, workdir)
  assert again['test'] == results['test']  # same params, same held-out masks
  with open(f'{workdir}/results_evaluate.json') as f:
    assert json.load(f)['test'] == results['test']
  with open(f'{workdir}/results.json') as f:
    assert json.load(f)['job'] == 'train'  # training's own results are kept


def test_load_rebuilds_the_run_from_its_directory(trained):
  config, workdir, results = trained
  loaded = plm.load(workdir)  # from config.json alone
  assert loaded.step == 30
  assert loaded.config.model.num_languages == 2  # resolved from data.languages at train time
  assert loaded.config.to_dict() == workdir_lib.read_config(workdir).to_dict()
  assert (loaded.tokenizer.fingerprint
          == workdir_lib.open_tokenizer(run.resolve(config), workdir).fingerprint)
  # The restored params are the trained ones: they give the run's test table exactly.
  task = pretrain.make_task(loaded.config, loaded.tokenizer)
  s = train.setup(loaded.config, task)
  with jax.set_mesh(s.mesh):
    table = train.evaluate(s, loaded.params, task.heldout('test'),
                           jax.random.PRNGKey(loaded.config.seed + 2))
  assert table == results['test']
  fresh = jax.tree_util.tree_map(np.asarray, loaded.params)
  again = plm.load(workdir, config=run.resolve(config.copy_and_resolve_references()))
  for a, b in zip(jax.tree_util.tree_leaves(fresh), jax.tree_util.tree_leaves(again.params)):
    np.testing.assert_array_equal(a, b)


def test_load_refuses_another_model_before_reading_arrays(trained):
  config, workdir, _ = trained
  other = run.resolve(config.copy_and_resolve_references())
  other.model.size = 'tiny'
  with pytest.raises(ValueError, match='the checkpoint holds another model'):
    plm.load(workdir, config=other)
  with pytest.raises(FileNotFoundError, match='not a plm run directory'):
    plm.load(f'{workdir}/tb')
