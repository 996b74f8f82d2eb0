"""TFDS builders for user corpora (plm/data/builders), on fixture files written here.

Each is built into a temporary data_dir and read back through
tfds.data_source with array_record; nothing touches the network.
"""
import os

import pytest
import tensorflow_datasets as tfds

from plm.data.builders import monolingual, parallel, xnli


def _write(path, text, encoding='utf-8'):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding=encoding, newline='') as f:
    f.write(text)


def _built(data_dir):
  return sorted(os.path.relpath(os.path.join(d, f), data_dir)
                for d, _, names in os.walk(data_dir) for f in names)


def test_monolingual_documents_split_by_hash_and_read_back(tmp_path):
  src, data_dir = str(tmp_path / 'wiki'), str(tmp_path / 'tfds')
  # WikiExtractor output (<doc> tags) in a subdirectory, and plain blank-line documents.
  docs = [[f'Hati namba {i}.', f'Mstari wa pili {i}, ñ.'] for i in range(24)]
  _write(f'{src}/sw/AA/wiki_00', ''.join(
      f'<doc id="{i}" url="u" title="t">\n' + '\n'.join(d) + '\n</doc>\n'
      for i, d in enumerate(docs[:12])))
  _write(f'{src}/sw/b.txt', '\n\n'.join('\n'.join(d) for d in docs[12:]) + '\n\n\n')
  _write(f'{src}/sw/.hidden/x.txt', 'never read\n')
  _write(f'{src}/sw/.DS_Store', '\xff')
  config = monolingual.config(src, 'sw', held_out_permille=300)
  got = {split: monolingual.load_documents(config, split, data_dir)
         for split in monolingual.SPLITS}
  for split in monolingual.SPLITS:  # the reference: each document's own hash, corpus order
    want = [d for d in docs if monolingual.split_of('\n'.join(d), 300) == split]
    assert want and got[split] == want
  # Read back directly through TFDS (array_record); 'source' names the file.
  source = tfds.data_source('plm_text', split='train', data_dir=data_dir,
                            builder_kwargs={'config': config, 'file_format': 'array_record'})
  assert {r['source'].decode() for r in source} == {'AA/wiki_00', 'b.txt'}
  assert any(f.endswith('.array_record-00000-of-00001') for f in _built(data_dir))
  # Changed files are a new config (fingerprint), never the stale build.
  _write(f'{src}/sw/b.txt', 'Hati mpya kabisa.\n')
  changed = monolingual.config(src, 'sw', held_out_permille=300)
  assert changed.name != config.name
  split = monolingual.split_of('Hati mpya kabisa.', 300)
  assert ['Hati mpya kabisa.'] in monolingual.load_documents(changed, split, data_dir)
  assert docs[12] not in monolingual.load_documents(
      changed, monolingual.split_of('\n'.join(docs[12]), 300), data_dir)


def test_monolingual_errors_name_the_fix(tmp_path):
  src, data_dir = str(tmp_path / 'wiki'), str(tmp_path / 'tfds')
  with pytest.raises(FileNotFoundError, match='is not a directory; it must hold one directory'):
    monolingual.config(src, 'sw')
  _write(f'{src}/en/a.txt', 'Hello.\n')
  with pytest.raises(FileNotFoundError, match=r"no directory .*/sw for language 'sw'.*\['en'\]"):
    monolingual.config(src, 'sw')
  _write(f'{src}/sw/a.txt', 'Habari.\n\ncrió\n')
  _write(f'{src}/sw/b.txt', 'sawa\ncrió\n', encoding='latin-1')
  with pytest.raises(ValueError, match=r'sw/b.txt, line 2: not UTF-8'):
    monolingual.load_documents(monolingual.config(src, 'sw'), 'train', data_dir)
  _write(f'{src}/sw/b.txt', '\n\n')
  with pytest.raises(ValueError, match=r"the test split of .*/sw is empty: too few documents"):
    monolingual.load_documents(monolingual.config(src, 'sw', held_out_permille=0), 'test',
                               data_dir)
  _write(f'{src}/sw/a.txt', '\n')
  with pytest.raises(ValueError, match=r'/sw holds no text \(every file is empty\)'):
    monolingual.load_documents(monolingual.config(src, 'sw'), 'train', data_dir)
  with pytest.raises(ValueError, match="Unknown split 'dev'"):
    monolingual.load_documents(monolingual.config(src, 'sw'), 'dev', data_dir)


def test_parallel_pairs_keep_every_aligned_line(tmp_path):
  src, data_dir = str(tmp_path / 'opus'), str(tmp_path / 'tfds')
  en = ['In the beginning.', '', 'Tab\tinside and "quotes".', 'Last line']
  es = ['En el principio.', 'Vacía en inglés.', 'Tabulador\tdentro y "comillas".', 'Última']
  _write(f'{src}/OpenSubtitles.en-es.en', '\r\n'.join(en) + '\r\n')  # Windows line ends too
  _write(f'{src}/OpenSubtitles.en-es.es', '\n'.join(es))  # no newline at the end
  _write(f'{src}/newstest.en', 'Hello.\n')
  _write(f'{src}/newstest.es', 'Hola.\n')
  config = parallel.config(src, ('en', 'es'), splits={'train': 'OpenSubtitles.en-es',
                                                      'test': 'newstest'})
  assert parallel.load_pairs(config, 'train', data_dir) == list(zip(en, es))
  assert parallel.load_pairs(config, 'test', data_dir) == [('Hello.', 'Hola.')]
  source = tfds.data_source('plm_parallel', split='train', data_dir=data_dir,
                            builder_kwargs={'config': config, 'file_format': 'array_record'})
  record = min(source, key=lambda r: r['index'])
  assert record['translation'] == {'en': b'In the beginning.', 'es': b'En el principio.'}
  with pytest.raises(ValueError, match=r"no 'validation' split .*name its files in `splits`"):
    parallel.load_pairs(config, 'validation', data_dir)


def test_parallel_errors_name_both_files(tmp_path):
  src, data_dir = str(tmp_path / 'wmt'), str(tmp_path / 'tfds')
  _write(f'{src}/train.en', 'a\nb\nc\n')
  _write(f'{src}/train.de', 'x\ny\n')
  config = parallel.config(src, ('en', 'de'), splits={'train': 'train'})
  with pytest.raises(ValueError, match=r'wmt/train.en has 3 lines but .*wmt/train.de has 2; '
                     'parallel files must be aligned'):
    parallel.load_pairs(config, 'train', data_dir)
  assert not [f for f in _built(data_dir) if 'array_record' in f]  # nothing half-written
  with pytest.raises(FileNotFoundError, match=r"missing \[.*wmt/test.de'\].*found in .*"
                     r"\['train.de', 'train.en'\]"):
    parallel.config(src, ('en', 'de'))
  with pytest.raises(ValueError, match='name two different languages'):
    parallel.config(src, ('en', 'en'))
  _write(f'{src}/train.de', 'x\ny\nz\n', encoding='utf-16')
  with pytest.raises(ValueError, match=r'train.de, line 1: not UTF-8'):
    parallel.load_pairs(parallel.config(src, ('en', 'de'), splits={'train': 'train'}), 'train',
                        data_dir)


def test_xnli_examples_with_header_and_aliases(tmp_path):
  src, data_dir = str(tmp_path / 'xnli'), str(tmp_path / 'tfds')
  _write(f'{src}/dev-sw.tsv', 'premise\thypothesis\tlabel\n'
         'Mtu anatembea.\tMtu yupo.\tentailment\n'
         'Mtu analala.\tMtu anakimbia.\tcontradictory\n'
         'Paka ni mweusi.\tPaka ana njaa.\tneutral\n')
  _write(f'{src}/test-sw.tsv', 'A "quoted" premise.\tHypothesis.\tcontradiction\n')
  _write(f'{src}/test-en.tsv', 'Other language.\tNot read.\tneutral\n')
  config = xnli.config(src, 'sw')
  assert xnli.load_examples(config, 'validation', data_dir) == [
      ('Mtu anatembea.', 'Mtu yupo.', 0), ('Mtu analala.', 'Mtu anakimbia.', 2),
      ('Paka ni mweusi.', 'Paka ana njaa.', 1)]
  assert xnli.load_examples(config, 'test', data_dir) == [
      ('A "quoted" premise.', 'Hypothesis.', 2)]
  source = tfds.data_source('plm_xnli', split='test', data_dir=data_dir,
                            builder_kwargs={'config': config, 'file_format': 'array_record'})
  assert source.dataset_info.features['label'].names == list(xnli.LABELS)
  with pytest.raises(ValueError, match=r"no 'train' split for 'sw'.*add train-sw.tsv"):
    xnli.load_examples(config, 'train', data_dir)


def test_xnli_errors_name_file_and_line(tmp_path):
  src, data_dir = str(tmp_path / 'xnli'), str(tmp_path / 'tfds')
  _write(f'{src}/test-fr.tsv', 'Un.\tDeux.\tneutral\nUn.\tDeux\tplus.\tneutral\n')
  with pytest.raises(ValueError, match=r'test-fr.tsv, line 2: 4 tab-separated fields, expected 3'):
    xnli.load_examples(xnli.config(src, 'fr'), 'test', data_dir)
  _write(f'{src}/test-fr.tsv', 'Un.\tDeux.\tneutral\nUn.\tDeux.\tmaybe\n')
  with pytest.raises(ValueError, match=r"test-fr.tsv, line 2: label 'maybe' is not one of"):
    xnli.load_examples(xnli.config(src, 'fr'), 'test', data_dir)
  with pytest.raises(FileNotFoundError, match=r"no XNLI file for 'de' .*expected \['train-de.tsv',"
                     r" 'dev-de.tsv', 'test-de.tsv'\] \(found: \['test-fr.tsv'\]\)"):
    xnli.config(src, 'de')


def test_tfds_text_corpus_feeds_the_pipeline(tmp_path):
  """data.corpus='tfds_text': the pipeline reads the builder's splits, per language."""
  from configs import xlm  # pylint: disable=g-import-not-at-top
  from plm.data import pipeline  # pylint: disable=g-import-not-at-top
  src = str(tmp_path / 'wiki')
  docs = {lang: [[f'{lang} hati {i}.', f'{lang} mstari {i}.'] for i in range(30)]
          for lang in ('sw', 'yo')}
  for lang, lang_docs in docs.items():
    _write(f'{src}/{lang}/a.txt', '\n\n'.join('\n'.join(d) for d in lang_docs) + '\n')
  c = xlm.get_config('tiny').data
  c.corpus, c.text_dir, c.tfds_dir = 'tfds_text', src, str(tmp_path / 'tfds')
  c.languages, c.held_out_permille = ('sw', 'yo'), 300
  for split in monolingual.SPLITS:
    texts = pipeline.load_texts(c, split)
    assert list(texts) == ['sw', 'yo']
    for lang, lang_docs in docs.items():
      want = [d for d in lang_docs if monolingual.split_of('\n'.join(d), 300) == split]
      assert want and texts[lang] == want
  c.languages = ('sw', 'zu')
  with pytest.raises(FileNotFoundError, match="no directory .*zu for language 'zu'"):
    pipeline.load_texts(c, 'train')
