"""Monolingual rows of unsupervised MT (plm.data.sentences.disjoint_sentence_rows): each
chapter (document) in one language only, so no verse has both its translations in training;
and the mt job's mt.unsupervised switch, which trains on them."""
import collections

import ml_collections
import numpy as np
import pytest

from configs import mass as mass_config
from plm import run
from plm import workdir as workdir_lib
from plm.data import bible, mixing, sentences
from plm.jobs import mt


def bible_config(tfds_dir):
  return ml_collections.ConfigDict(dict(corpus='bible', languages=('en', 'es'),
                                        tfds_dir=tfds_dir))


def chapter(ref):
  book, number, _ = bible.parse_reference(ref)
  return f'{book} {number}'


@pytest.fixture(scope='module')
def train_split(tfds_dir):
  return sentences.disjoint_sentences(bible_config(tfds_dir), 'train', ('en', 'es'))


def test_no_verse_and_no_chapter_on_both_sides(tfds_dir, train_split):
  refs = {lang: [ref for _, ref, _ in v] for lang, v in train_split.items()}
  chapters = {lang: {chapter(r) for r in rs} for lang, rs in refs.items()}
  assert refs['en'] and refs['es'] and all(text for v in train_split.values() for *_, text in v)
  assert not set(refs['en']) & set(refs['es']), 'a verse is in both languages'
  assert not chapters['en'] & chapters['es'], 'a chapter is in both languages'
  # The unit is the chapter, as `unit_language` decides, and a kept chapter is kept whole.
  for lang, v in train_split.items():
    assert all(unit == chapter(ref) and sentences.unit_language(unit, ('en', 'es')) == lang
               for unit, ref, _ in v)
  data_dir = tfds_dir
  for lang, translation in (('en', 'en_kjv'), ('es', 'es_rv1909')):
    verses = bible.load_verses(translation, 'train', data_dir)
    mine = [r for r, _ in verses if chapter(r) in chapters[lang]]
    assert refs[lang] == mine, 'a kept chapter lost verses, or the order changed'
    # Every train chapter of the translation went to one side or the other.
    assert {chapter(r) for r, _ in verses} <= chapters['en'] | chapters['es']
  # About half the chapters each; the held-out splits are halved alike.
  share = len(chapters['en']) / (len(chapters['en']) + len(chapters['es']))
  assert 0.42 < share < 0.58, share
  # The pair's order does not change the split (en->es and es->en train on the same data).
  swapped = sentences.disjoint_sentences(bible_config(tfds_dir), 'train', ('es', 'en'))
  assert swapped == train_split


def test_parallel_verses_of_the_split_fall_on_one_side_only(tfds_dir, train_split):
  """The aligned pairs the supervised job would train on: each has one side at most."""
  refs = {lang: {ref for _, ref, _ in v} for lang, v in train_split.items()}
  en = dict(bible.load_verses('en_kjv', 'train', tfds_dir))
  es = dict(bible.load_verses('es_rv1909', 'train', tfds_dir))
  aligned = set(en) & set(es)
  assert len(aligned) > 20000
  on_both = [r for r in aligned if r in refs['en'] and r in refs['es']]
  assert not on_both
  sides = collections.Counter(('en' if r in refs['en'] else 'es') for r in aligned)
  assert min(sides.values()) > 0.4 * len(aligned)


def test_textdir_documents_are_split_by_index(tmp_path):
  docs = {'en': [['one a', 'one b'], ['two'], ['three'], ['four a', 'four b'], ['five']],
          'es': [['uno a', 'uno b'], ['dos'], ['tres'], ['cuatro a', 'cuatro b'], ['cinco']]}
  for lang, d in docs.items():
    (tmp_path / f'{lang}.train.txt').write_text('\n\n'.join('\n'.join(x) for x in d) + '\n',
                                                encoding='utf-8')
  config = ml_collections.ConfigDict(dict(corpus='textdir', languages=('en', 'es'),
                                          text_dir=str(tmp_path)))
  out = sentences.disjoint_sentences(config, 'train', ('en', 'es'))
  kept = {lang: {unit for unit, _, _ in v} for lang, v in out.items()}
  assert not kept['en'] & kept['es'] and kept['en'] | kept['es'] == {
      f'document {d}' for d in range(5)}
  for lang, v in out.items():
    for unit, ref, text in v:
      d, s = int(ref.split()[1]), int(ref.split()[3])
      assert unit == f'document {d}' and docs[lang][d][s] == text
  with pytest.raises(ValueError, match='two distinct languages'):
    sentences.disjoint_sentences(config, 'train', ('en', 'en'))
  with pytest.raises(ValueError, match=r"Language 'fr' is not in data.languages"):
    sentences.disjoint_sentences(config, 'train', ('en', 'fr'))


def test_rows_of_both_languages(tiny_config, train_split):
  tokenizer = workdir_lib.open_tokenizer(tiny_config, '')
  rows = sentences.disjoint_sentence_rows(tiny_config.data, tokenizer, 'train', ('en', 'es'), 64)
  ids = {lang: tokenizer.encode([s for _, _, s in v]) for lang, v in train_split.items()}
  for lang_id, lang in enumerate(('en', 'es')):
    r, info = rows[lang], rows[lang].info
    fit = [i for i in ids[lang] if 0 < len(i) <= 62]
    assert len(r) == info['sentences'] == len(fit) > 1000
    assert info['too_long'] == sum(len(i) > 62 for i in ids[lang]) and info['empty'] == 0
    assert info['units'] == len({u for u, _, _ in train_split[lang]})
    assert info['units_other'] == len({u for u, _, _ in train_split[('es', 'en')[lang_id]]})
    a = r.arrays
    n = a['segment_ids'].sum(1)
    for row in (0, len(r) // 2, len(r) - 1):  # a few rows, cell by cell
      want = [tokenizer.bos_id, *fit[row], tokenizer.eos_id]
      np.testing.assert_array_equal(a['tokens'][row, :n[row]], want)
      assert not a['tokens'][row, n[row]:].any()
    np.testing.assert_array_equal(a['langs'], lang_id * a['segment_ids'])


def mass_tiny(tiny_config, **mt_fields):
  c = mass_config.get_config('tiny')
  c.data.tfds_dir, c.data.vocab_path = tiny_config.data.tfds_dir, tiny_config.data.vocab_path
  c.mt.update(mt_fields)
  return run.finetune_config(run.resolve(c))


def test_mt_job_unsupervised_switch(tiny_config, tmp_path):
  tokenizer = workdir_lib.open_tokenizer(tiny_config, '')
  config = mass_tiny(tiny_config, unsupervised=True)
  task = mt.make_task(config, tokenizer, str(tmp_path))
  assert task.objective.heads == ('dae', 'bt') and task.name == 'mt'
  assert isinstance(task.train_rows, mixing.MixedDataset)
  assert task.train_rows.names == ('en', 'es')
  np.testing.assert_allclose(task.train_rows.weights, [0.5, 0.5])
  want = sentences.disjoint_sentence_rows(config.data, tokenizer, 'train', ('en', 'es'), 64)
  for name, stream in zip(task.train_rows.names, task.train_rows.streams):
    assert stream.fingerprint == want[name].fingerprint
    assert 'src_tokens' not in stream.arrays  # no pairs in training
  # Held-out sets stay the supervised test pairs, as in the supervised mode.
  held = task.heldout('test')
  assert set(held) == {'en-es'}
  supervised = mt.make_task(mass_tiny(tiny_config), tokenizer, str(tmp_path))
  assert supervised.objective.heads == ('mt',)
  assert held['en-es'].fingerprint == supervised.heldout('test')['en-es'].fingerprint
  # Settings that contradict the mode fail at start, naming the field.
  with pytest.raises(ValueError, match='mt.train_pairs=100 samples parallel pairs'):
    mt.make_task(mass_tiny(tiny_config, unsupervised=True, train_pairs=100), tokenizer, '')
  bad = mass_tiny(tiny_config, unsupervised=True)
  bad.objective.loss_weights = {'mt': 1.0}
  with pytest.raises(ValueError, match=r"names \['mt'\], but this objective trains the heads "
                                       r"\['dae', 'bt'\]"):
    mt.make_task(bad, tokenizer, '')
