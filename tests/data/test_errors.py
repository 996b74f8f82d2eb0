"""User errors in the data config or corpus files raise one clear message."""

import ml_collections
import pytest

from plm.data import pipeline


def _config(tmp_path, **overrides):
  fields = dict(corpus='textdir', languages=('en',), text_dir=str(tmp_path),
                tfds_dir=str(tmp_path / 'tfds'), seq_len=16)
  return ml_collections.ConfigDict({**fields, **overrides})


def test_missing_text_file(tmp_path):
  (tmp_path / 'en.train.txt').write_text('hello\n', encoding='utf-8')
  config = _config(tmp_path, languages=('en', 'es'))
  with pytest.raises(FileNotFoundError) as e:
    pipeline.load_texts(config, 'train')
  message = str(e.value)
  assert f'Missing text file {tmp_path / "es.train.txt"}' in message
  assert '<lang>.<split>.txt' in message and 'one sentence per line' in message
  assert "found there: ['en.train.txt']" in message


@pytest.mark.parametrize('content', [b'', b'\n  \n\n'])
def test_empty_file(tmp_path, content):
  (tmp_path / 'en.test.txt').write_bytes(content)
  with pytest.raises(ValueError, match=r'en\.test\.txt is empty\. Put text'):
    pipeline.load_texts(_config(tmp_path), 'test')


def test_non_utf8_line(tmp_path):
  path = tmp_path / 'en.train.txt'
  path.write_bytes('ok\n\nfine\n'.encode() + 'año\n'.encode('latin-1'))
  with pytest.raises(ValueError) as e:
    pipeline.load_texts(_config(tmp_path), 'train')
  assert str(e.value).startswith(f'{path}, line 4: not UTF-8')
  assert 're-encode the file as UTF-8' in str(e.value)


def test_unknown_language(tmp_path):
  config = _config(tmp_path, corpus='bible', languages=('en', 'xx'))
  with pytest.raises(ValueError, match=(
      r"Unknown language code\(s\) \['xx'\] for the bible corpus; known: "
      r"\['en', 'en_web', 'es'\]\. Fix `data.languages`")):
    pipeline.load_texts(config, 'train')


def test_unknown_corpus_split_and_languages(tmp_path):
  with pytest.raises(ValueError, match="corpus 'wiki'; set `data.corpus`"):
    pipeline.load_texts(_config(tmp_path, corpus='wiki'), 'train')
  with pytest.raises(ValueError, match="Unknown split 'dev'"):
    pipeline.load_texts(_config(tmp_path), 'dev')
  with pytest.raises(ValueError, match='`data.languages` .* is empty'):
    pipeline.load_texts(_config(tmp_path, languages=()), 'train')
  with pytest.raises(ValueError, match=r"\['es'\] are not in `data.languages`"):
    pipeline.make_dataset(_config(tmp_path), None, 'train', languages=('es',))


def test_utf8_bom_and_crlf_are_accepted(tmp_path):
  (tmp_path / 'en.train.txt').write_bytes(b'\xef\xbb\xbfa b\r\nc\r\n\r\nd\r\n')
  assert pipeline.load_texts(_config(tmp_path), 'train') == {
      'en': [['a b', 'c'], ['d']]}
