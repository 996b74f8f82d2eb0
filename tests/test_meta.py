"""What a checkpoint must match (plm/meta.py) and how saved params meet a new model
(plm.models.init_map, shape_fields): literal meta dicts, no training."""
import numpy as np
import pytest

from plm import meta, models
from plm.data import dataset, kg, mixing, rows as rows_lib
from plm.objectives import base


def model_config(**fields) -> dict:
  c = models.config('encoder_lm').to_dict()
  c.update(fields)
  return c


def run_meta(**fields) -> dict:
  return dict(dict(vocab='v1', vocab_size=100, model=model_config(), task='pretrain',
                   frozen=[], data='d1'), **fields)


def test_equal_meta_but_compute_fields_and_data_resumes():
  saved = run_meta()
  meta.check_meta(saved, run_meta(model=model_config(dtype='bfloat16', remat='full'),
                                  data='d2'))  # data changed: a warning, not an error


def test_every_differing_field_is_named_with_both_values_and_the_fix():
  saved = run_meta(model=model_config(hidden=32, layers=2))
  current = run_meta(vocab='v2', model=model_config(hidden=64, layers=3), frozen=['encoder'])
  with pytest.raises(ValueError) as e:
    meta.check_meta(saved, current)
  lines = str(e.value).splitlines()
  assert lines == [
      "the checkpoint was trained with frozen parameters: frozen is [] there, ['encoder'] in "
      'this run; set finetune.freeze_encoder as the run had it',
      "the checkpoint holds another model: model.hidden is 32 there, 64 in this run; use the "
      'config it was trained with',
      "the checkpoint holds another model: model.layers is 2 there, 3 in this run; use the "
      'config it was trained with',
      "the checkpoint was trained with vocabulary: vocab is 'v1' there, 'v2' in this run; set "
      'data.vocab_path to the original vocabulary',
      '(or start in a new --workdir)']


def test_a_field_the_checkpoint_lacks_has_its_default():
  saved = run_meta(model={k: v for k, v in model_config().items()
                          if k not in models.DEFAULT_WHEN_ABSENT})
  del saved['frozen']  # saved before frozen parameters existed: none
  meta.check_meta(saved, run_meta(model=model_config(layer_heads=(), quant='')))
  with pytest.raises(ValueError, match=r"model.quant is '' there, 'int8' in this run"):
    meta.check_meta(saved, run_meta(model=model_config(quant='int8')))
  with pytest.raises(ValueError, match=r"frozen is \[\] there, \['encoder'\]"):
    meta.check_meta(saved, run_meta(frozen=['encoder']))


def test_only_the_keys_of_current_are_matched():
  """plm.load matches vocabulary and model alone; a dataset's own meta key is matched
  when the run has it, with a generic fix if nothing names one."""
  meta.check_meta(run_meta(schedule=[1]), dict(vocab='v1', model=model_config()))
  with pytest.raises(ValueError, match=r"has another order: order is 'a' there, 'b' in this "
                                       'run; restore order as the run had it'):
    meta.check_meta(run_meta(order='a'), run_meta(order='b'))


def test_imported_params_are_not_resumed_but_load():
  saved = run_meta(task='convert')
  meta.check_meta(saved, dict(vocab='v1', model=model_config()))  # plm.load reads them
  with pytest.raises(ValueError, match='holds parameters imported by job=convert, not a '
                                       'training run to resume; .*config.init_from='):
    meta.check_meta(saved, run_meta(task='classify'))


def test_each_model_declares_its_shape_fields():
  for name in models.NAMES:
    fields = models.shape_fields(name)
    assert set(fields) <= set(models.config(name)), name
    assert not set(fields) & set(models.COMPUTE_FIELDS), name
  assert 'decoder_layers' not in models.shape_fields('seq2seq')  # init_from may be an encoder
  assert models.shape_fields('laser') == ('layers', 'hidden', 'num_languages')
  assert models.shape_fields('transe') == ()


def test_init_from_another_shape_names_the_field():
  class Config:
    init_from = '/runs/x'
    model = models.config('classifier')
  Config.model.size, Config.model.num_classes = 'tiny', 3
  saved = dict(vocab='v', model=model_config(size='small'))
  meta.check_init_from(Config, dict(saved, model=model_config(size='tiny')), dict(vocab='v'))
  with pytest.raises(ValueError, match=r"holds another model shape \(model.size='small'\)"):
    meta.check_init_from(Config, saved, dict(vocab='v'))


def tree(*shapes_by_name):
  return {name: {'kernel': np.full(shape, fill, np.float32)}
          for (name, shape), fill in zip(shapes_by_name, range(1, 10))}


def test_init_map_takes_parts_of_the_same_name_and_shapes():
  saved = tree(('encoder', (4, 4)), ('lm_head', (4, 9)))
  fresh = {'encoder': {'kernel': np.zeros((4, 4), np.float32)},
           'classifier': {'kernel': np.zeros((4, 3), np.float32)}}
  mapped = models.init_map(saved, fresh)
  assert mapped['encoder'] is saved['encoder'] and mapped['classifier'] is fresh['classifier']


def test_init_map_puts_a_bare_encoder_tree_under_encoder():
  """A converted `encoder` run holds the Encoder's own tree (embeddings, layers)."""
  bare = {'embeddings': {'kernel': np.ones((9, 4), np.float32)},
          'layer_0': {'kernel': np.ones((4, 4), np.float32)}}
  fresh = {'encoder': {'embeddings': {'kernel': np.zeros((9, 4), np.float32)},
                       'layer_0': {'kernel': np.zeros((4, 4), np.float32)}},
           'classifier': {'kernel': np.zeros((4, 3), np.float32)}}
  mapped = models.init_map(bare, fresh)
  assert mapped['encoder'] is bare and mapped['classifier'] is fresh['classifier']
  other = {'embeddings': {'kernel': np.ones((9, 8), np.float32)},
           'layer_0': {'kernel': np.ones((8, 8), np.float32)}}
  with pytest.raises(ValueError, match=r"none of which fit this model \(\['classifier', "
                                       r"'encoder'\]\) with the same shapes"):
    models.init_map(other, fresh)


def test_every_training_dataset_keeps_the_protocol():
  rows = rows_lib.Rows({'tokens': np.arange(12).reshape(6, 2), 'segment_ids': np.ones((6, 2))})
  triples = kg.triple_rows(np.arange(30).reshape(10, 3))
  mixed = mixing.MixedDataset({'a': rows, 'b': rows}, {'a': 1.0, 'b': 1.0})
  for ds in (rows, triples, mixed):
    assert isinstance(ds, dataset.Dataset)
    assert ds.iterator(4, seed=0) is None  # in memory: the loop calls batch(step)
    assert dict(ds.meta) == {}
    key = 'heads' if ds is triples else 'tokens'
    np.testing.assert_array_equal(ds.batch(3, 4, seed=1)[key], ds.batch(3, 4, seed=1)[key])
  assert dict(mixed.info) == {} and len(mixed) == 12


def test_tokens_are_counted_by_the_objective():
  batch = dict(src_segment_ids=np.array([[1, 1, 0], [1, 0, 0]]),
               tgt_segment_ids=np.array([[1, 1, 1], [0, 0, 0]]), stream=np.zeros(2))
  assert int(base.segment_tokens(batch)) == 6
  assert base.segment_tokens(dict(heads=np.zeros(5), stream=np.zeros(5))) == 5  # a row each
  objective = base.token_objective('mlm', lambda rng, b: None, loss_chunk=4)
  assert objective.count_tokens is base.segment_tokens

  class NoVocabularyHead:
    pass

  with pytest.raises(ValueError, match='train.loss_chunk=4 needs a language model .* '
                                       'NoVocabularyHead has no vocabulary head'):
    objective.check_model(NoVocabularyHead())
  assert base.token_objective('mlm', lambda rng, b: None).check_model is None


def test_a_model_without_language_embeddings_takes_no_language_ids():
  assert models.unused_inputs(models.config('encoder_lm')) == ('langs',)
  c = models.config('seq2seq')
  c.num_languages = 2
  assert models.unused_inputs(c) == ()
