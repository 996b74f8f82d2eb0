"""A user's own model and data end to end: a transformers BERT with a WordPiece vocabulary
(trained here on the Bible, weights random) -> the convert job -> classify on TSV files,
zero-shot on another language's file -> export."""
import json
import os

import numpy as np
import pytest

from configs import hf as hf_config
import plm
from plm import workdir as workdir_lib
from plm.data import bible_tasks
from plm.jobs import classify, convert

pytestmark = pytest.mark.e2e

transformers = pytest.importorskip('transformers')
tokenizers = pytest.importorskip('tokenizers')


def _write_tsv(path, translation, split, data_dir, n):
  texts, labels = bible_tasks.genre_examples(translation, split, data_dir)
  order = np.random.RandomState(0).permutation(len(texts))[:n]
  with open(path, 'w', encoding='utf-8') as f:
    for i in order:
      f.write(f'{texts[i]}\t{bible_tasks.GENRES[labels[i]]}\n')
  return str(path)


@pytest.fixture(scope='module')
def hf_dir(tfds_dir, tmp_path_factory):
  """A BertModel directory (no LM head: plm's `encoder`, which init_from puts under the
  classifier's head) as transformers writes it, with a WordPiece vocab.txt."""
  path = tmp_path_factory.mktemp('hf_bert')
  texts, _ = bible_tasks.genre_examples('en_kjv', 'train', tfds_dir)
  wp = tokenizers.BertWordPieceTokenizer(lowercase=True)
  wp.train_from_iterator(texts[:5000] + bible_tasks.genre_examples('es_rv1909', 'test',
                                                                   tfds_dir)[0],
                         vocab_size=1000, special_tokens=['[PAD]', '[UNK]', '[CLS]', '[SEP]',
                                                          '[MASK]'])
  wp.save_model(str(path))
  config = transformers.BertConfig(vocab_size=wp.get_vocab_size(), hidden_size=64,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=128, max_position_embeddings=64)
  torch = pytest.importorskip('torch')
  torch.manual_seed(0)  # transformers initializes from torch's global generator
  transformers.BertModel(config).save_pretrained(str(path))
  return str(path)


@pytest.fixture(scope='module')
def converted(hf_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('converted'))
  return convert.convert_job(hf_config.get_config(hf_dir), workdir)


def _classify_config(hf_dir, ckpt, train, tests):
  config = hf_config.get_config(hf_dir)
  config.job, config.init_from = 'classify', ckpt
  fc = config.finetune
  fc.train_file, fc.test_files = train, ','.join(f'{k}={v}' for k, v in tests.items())
  fc.seq_len, fc.skip_long, fc.steps, fc.batch_size, fc.lr = 64, True, 120, 32, 3e-3
  config.model.dropout = config.model.attention_dropout = 0.0
  return config


def test_classify_user_tsv_zero_shot(hf_dir, converted, tfds_dir, tmp_path, capsys):
  train = _write_tsv(tmp_path / 'train.tsv', 'en_kjv', 'train', tfds_dir, 3000)
  tests = {'en': _write_tsv(tmp_path / 'en.tsv', 'en_kjv', 'test', tfds_dir, 300),
           'es': _write_tsv(tmp_path / 'es.tsv', 'es_rv1909', 'test', tfds_dir, 300)}
  results = classify.classify_job(_classify_config(hf_dir, converted, train, tests),
                                  str(tmp_path / 'cls'))
  assert f'init_from: encoder from step 0 of {converted}; ' in capsys.readouterr().out
  assert results['classes'] == sorted(bible_tasks.GENRES)
  assert set(results['test']) == {'en', 'es'}
  en, share = results['test']['en']['classify'], results['majority_share']['en']
  # Held-out chapters: better than the majority class and clearly better than the training
  # label distribution (the unigram baseline's cross-entropy). Measured: accuracy 0.30
  # against a majority share of 0.21, loss 1.55 against 1.82.
  assert en['accuracy'] > share + 0.04, (en, share)
  assert en['loss'] < en['unigram_loss'] - 0.1, en
  assert workdir_lib.read_config(str(tmp_path / 'cls')).model.name == 'classifier'
  # The loaded run labels the en test file's lines with the job's accuracy, by label name
  run = plm.load(str(tmp_path / 'cls'))
  assert run.methods() == ('embed', 'classify')
  with open(tests['en'], encoding='utf-8') as f:
    texts, gold = zip(*(line.rstrip('\n').split('\t') for line in f))
  fits = [len(ids) + 2 <= 64 for ids in run.tokenizer.encode(list(texts))]
  texts = [t for t, keep in zip(texts, fits) if keep]
  gold = [g for g, keep in zip(gold, fits) if keep]
  predicted = run.classify(texts)
  assert set(predicted) <= set(bible_tasks.GENRES)
  assert np.mean([p == g for p, g in zip(predicted, gold)]) == pytest.approx(en['accuracy'])
  converted_run = plm.load(os.path.dirname(converted))  # the convert job's run
  assert converted_run.config.model.name == 'encoder' and converted_run.methods() == ('embed',)
  assert converted_run.embed(texts[:2]).shape == (2, 64)


def test_bad_test_file_stops_before_training(hf_dir, converted, tfds_dir, tmp_path):
  train = _write_tsv(tmp_path / 'train.tsv', 'en_kjv', 'train', tfds_dir, 50)
  bad = tmp_path / 'bad.tsv'
  bad.write_text('In the beginning\tlaw\nAnd God said\tpsalms\n', encoding='utf-8')
  config = _classify_config(hf_dir, converted, train, {'en': str(bad)})
  with pytest.raises(ValueError, match=r"bad\.tsv:2 has the label 'psalms'"):
    classify.classify_job(config, str(tmp_path / 'x'))
  assert not os.path.exists(tmp_path / 'x' / 'checkpoints')


def test_export_writes_hf_directory(converted, tmp_path):
  workdir = os.path.dirname(converted)
  config = workdir_lib.read_config(workdir)
  config.export.output = out = str(tmp_path / 'out')
  convert.export_job(config, workdir)
  assert sorted(os.listdir(out)) == ['config.json', 'model.safetensors', 'tokenizer.json',
                                     'tokenizer_config.json']
  with open(os.path.join(out, 'config.json')) as f:
    assert json.load(f)['architectures'] == ['BertModel']
  model = transformers.AutoModel.from_pretrained(out)
  assert type(model).__name__ == 'BertModel'


def test_converted_run_is_not_resumed_by_training(hf_dir, converted, tfds_dir, tmp_path):
  """Training in the convert job's workdir would find params without optimizer state: it
  is refused by name, and the converted run is left as it was."""
  workdir = os.path.dirname(converted)
  train = _write_tsv(tmp_path / 't.tsv', 'en_kjv', 'train', tfds_dir, 40)
  config = _classify_config(hf_dir, '', train, {'en': train})
  with open(os.path.join(workdir, 'config.json'), encoding='utf-8') as f:
    before = f.read()
  with pytest.raises(ValueError, match='holds parameters imported by job=convert'):
    classify.classify_job(config, workdir)
  assert os.listdir(converted) == ['0']  # not set aside as broken
  with open(os.path.join(workdir, 'config.json'), encoding='utf-8') as f:
    assert f.read() == before
