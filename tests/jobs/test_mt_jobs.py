"""The mt and translate jobs end to end on configs/mass.py:tiny, XLM initialisation,
and the word-dictionary baseline."""
import json

import jax
import numpy as np
import pytest
import sacrebleu

from configs import mass as mass_config
import plm
from plm import checkpoint, run, train
from plm import workdir as workdir_lib
from plm.evaluate import generation
from plm.jobs import mt, pretrain

pytestmark = pytest.mark.e2e


def mass_tiny(tiny_config, **overrides):
  c = mass_config.get_config('tiny')
  c.data.tfds_dir, c.data.vocab_path = tiny_config.data.tfds_dir, tiny_config.data.vocab_path
  c.train.eval_every = 0
  c.train.steps = c.finetune.steps = 10
  c.decode.max_test_examples, c.decode.batch_size, c.decode.beam_size = 12, 8, 2
  for k, v in overrides.items():
    c[k.split('.')[0]][k.split('.')[1]] = v
  return c


@pytest.fixture(scope='module')
def mass_run(tiny_config, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('mass'))
  pretrain.train_job(mass_tiny(tiny_config), workdir)
  return workdir


@pytest.fixture(scope='module')
def mt_run(tiny_config, mass_run, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('mt'))
  config = mass_tiny(tiny_config)
  config.job, config.init_from = 'mt', f'{mass_run}/checkpoints'
  return config, workdir, mt.mt_job(config, workdir)


def test_mt_results_and_baselines_are_what_sacrebleu_gives(tiny_config, mt_run):
  config, workdir, results = mt_run
  with open(f'{workdir}/results.json') as f:
    assert json.load(f)['translation'] == results['translation']
  t = results['translation']
  assert t['examples'] == 12 and set(results['test']) == {'en-es'}
  test = mt.test_pairs(run.resolve(config), workdir_lib.open_tokenizer(config, workdir))
  sources, refs = [s for _, s, _ in test], [r for _, _, r in test]
  with open(results['hypotheses'], encoding='utf-8') as f:
    hyps = f.read().split('\n')[:-1]
  assert len(hyps) == 12
  assert t['model']['bleu'] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
  assert t['copy_source']['chrf'] == pytest.approx(sacrebleu.corpus_chrf(sources, [refs]).score)
  assert t['model']['signature']['bleu'].startswith('nrefs:1|')
  # The dictionary baseline translates words: it beats copying English into Spanish.
  assert t['word_dictionary']['chrf'] > t['copy_source']['chrf'] + 5


def test_translate_keeps_lines_order_and_empty_lines(tiny_config, mt_run, tmp_path):
  config, workdir, _ = mt_run
  lines = ['In the beginning God created the heaven and the earth.', '',
           'And God said, Let there be light: and there was light.']
  src = tmp_path / 'en.txt'
  src.write_text('\n'.join(lines) + '\n', encoding='utf-8')
  config = config.copy_and_resolve_references()
  config.job, config.decode.input = 'translate', str(src)
  config.decode.output = str(tmp_path / 'es.txt')
  out = mt.translate_job(config, workdir)
  written = (tmp_path / 'es.txt').read_text(encoding='utf-8').split('\n')[:-1]
  assert written == out and len(out) == 3 and out[1] == '' and out[0] and out[2]
  # Each line alone gives the same translation: batching and order change nothing.
  for i in (0, 2):
    src.write_text(lines[i] + '\n', encoding='utf-8')
    assert mt.translate_job(config, workdir) == [out[i]]
  src.write_text('word ' * 200 + '\n', encoding='utf-8')
  with pytest.raises(ValueError, match=r'en.txt, line 1: \d+ tokens with bos/eos, more than '
                                       r'mt.src_len=64'):
    mt.translate_job(config, workdir)


def test_translate_with_only_the_workdir_uses_the_run_vocabulary(tiny_config, mt_run, tmp_path):
  """configs/mass.py's documented command: --workdir and the files only. The mt run was
  trained with another run's vocabulary (data.vocab_path), which its config.json records."""
  config, workdir, _ = mt_run
  src = tmp_path / 'en.txt'
  src.write_text('In the beginning God created the heaven and the earth.\n\nAmen.\n',
                 encoding='utf-8')
  bare = mass_config.get_config('tiny')
  bare.job, bare.decode.input = 'translate', str(src)
  bare.decode.output = str(tmp_path / 'bare.txt')
  bare.decode.batch_size, bare.decode.beam_size = 8, 2  # the fixture's search: same outputs
  out = mt.translate_job(bare, workdir)
  config = config.copy_and_resolve_references()
  config.job, config.decode.input = 'translate', str(src)
  config.decode.output = str(tmp_path / 'explicit.txt')
  assert out == mt.translate_job(config, workdir) and out[0] and out[1] == '' and out[2]
  bare.decode.output = ''
  with pytest.raises(ValueError, match='needs decode.output'):
    mt.translate_job(bare, workdir)


def test_loaded_runs_translate_as_the_jobs(tiny_config, mass_run, mt_run, tmp_path):
  """plm.load(mt run).translate writes what job=mt wrote for the test sources and what
  job=translate writes for a file; the MASS pre-training run loads and embeds only."""
  config, workdir, results = mt_run
  mt_loaded = plm.load(workdir)
  assert mt_loaded.methods() == ('embed', 'translate')
  test = mt.test_pairs(mt_loaded.config, mt_loaded.tokenizer)
  with open(results['hypotheses'], encoding='utf-8') as f:
    assert mt_loaded.translate([s for _, s, _ in test]) == f.read().split('\n')[:-1]
  lines = ['In the beginning God created the heaven and the earth.', '', 'Amen.']
  (tmp_path / 'en.txt').write_text('\n'.join(lines) + '\n', encoding='utf-8')
  config = config.copy_and_resolve_references()
  config.job, config.decode.input = 'translate', str(tmp_path / 'en.txt')
  config.decode.output = str(tmp_path / 'es.txt')
  assert mt_loaded.translate(lines) == mt.translate_job(config, workdir)
  with pytest.raises(plm.UserError, match=r'line 1: \d+ tokens with bos/eos, more than '
                                          r'mt.src_len=64'):
    mt_loaded.translate(['word ' * 200])
  mass = plm.load(mass_run)
  assert mass.config.model.name == 'seq2seq' and mass.methods() == ('embed',)
  vectors = mass.embed(lines)
  assert vectors.shape[0] == 3 and np.isfinite(vectors).all()
  with pytest.raises(plm.UserError, match=r"no .translate\(\); its methods are \['embed'\]"):
    mass.translate(lines)


def test_xlm_checkpoint_initialises_encoder_and_decoder(tiny_config, tmp_path):
  xlm = tiny_config.copy_and_resolve_references()
  xlm.train.steps, xlm.train.eval_every = 5, 0
  pretrain.train_job(xlm, str(tmp_path / 'xlm'))
  saved = workdir_lib.load(str(tmp_path / 'xlm')).params
  config = run.finetune_config(run.resolve(mass_tiny(tiny_config)))
  config.init_from = str(tmp_path / 'xlm' / 'checkpoints')
  tokenizer = workdir_lib.open_tokenizer(config, str(tmp_path / 'xlm'))
  s = train.setup(config, mt.make_task(config, tokenizer, str(tmp_path)))
  state = train.restore_or_init(config, s, checkpoint.manager(str(tmp_path / 'm')))
  p = jax.device_get(state['params'])
  same = lambda a, b: jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, a, b))
  assert same(p['encoder'], saved['encoder']) and same(p['lm_head'], saved['mlm_head'])
  for part in ('self_attention', 'self_attention_ln', 'mlp', 'mlp_ln'):
    assert same(p['decoder']['layer_1'][part], saved['encoder']['layer_1'][part]), part
  fresh = s.init(jax.random.PRNGKey(config.seed), s.extras)['params']
  assert same(p['decoder']['layer_0']['cross_attention'],
              jax.device_get(fresh['decoder']['layer_0']['cross_attention']))


def test_init_from_another_family_is_refused_by_name(tiny_config, tmp_path):
  cls = tiny_config.copy_and_resolve_references()
  cls.job, cls.finetune.steps, cls.train.eval_every = 'classify', 2, 0
  cls.finetune.test_languages = ('en',)
  from plm.jobs import classify  # pylint: disable=g-import-not-at-top
  classify.classify_job(cls, str(tmp_path / 'cls'))
  config = mass_tiny(tiny_config)
  config.init_from = str(tmp_path / 'cls' / 'checkpoints')
  with pytest.raises(ValueError, match="holds a 'classifier' model; mt starts from a 'seq2seq'"):
    mt.mt_job(config, str(tmp_path / 'mt'))


def test_word_dictionary_picks_the_aligned_word():
  pairs = [('the house', 'la casa'), ('the dog', 'el perro'), ('a house', 'una casa'),
           ('the house is big', 'la casa es grande'), ('a dog', 'un perro')]
  d = generation.word_dictionary(pairs)
  assert d['house'] == 'casa' and d['dog'] == 'perro'
  assert generation.translate_words(['The house', 'cat'], d) == ['la casa', 'cat']
