"""Every notebook in notebooks/ runs top to bottom on CPU with tiny settings
(PLM_NOTEBOOK_TINY=1), in a fresh Jupyter kernel, as Colab would run it."""
import glob
import os
import re

import pytest

pytestmark = pytest.mark.e2e

nbclient = pytest.importorskip('nbclient')
nbformat = pytest.importorskip('nbformat')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, 'notebooks', '*.ipynb')))


def _text(nb) -> str:
  out = []
  for cell in nb.cells:
    for o in cell.get('outputs', []):
      out.append(o.get('text', '') or ''.join(o.get('data', {}).get('text/plain', '')))
  return '\n'.join(out)


def test_there_are_notebooks():
  assert NOTEBOOKS


@pytest.mark.parametrize('path', NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tfds_dir, tmp_path, monkeypatch):
  monkeypatch.setenv('PLM_NOTEBOOK_TINY', '1')
  monkeypatch.setenv('PLM_TFDS_DIR', tfds_dir)
  monkeypatch.setenv('PLM_NOTEBOOK_WORKDIR', str(tmp_path / 'run'))
  monkeypatch.setenv('MPLBACKEND', 'Agg')
  nb = nbformat.read(path, as_version=4)
  assert not any('YOUR_' in ''.join(c.source) for c in nb.cells), 'a placeholder is left'
  nbclient.NotebookClient(nb, timeout=300, kernel_name='python3',
                          resources={'metadata': {'path': os.path.dirname(path)}}).execute()
  text = _text(nb)
  assert f'plm from {os.path.join(ROOT, "plm")}' in text  # this checkout's plm, not another
  if os.path.basename(path) == 'xlm_quickstart.ipynb':
    assert "{'tiny': True, 'steps': 12, 'batch_size': 8}" in text
    assert 'loss ' in text and 'en accuracy' in text and 'es accuracy' in text
  if os.path.basename(path) == 'hf_import.ipynb':
    assert 'P@1 of KJV -> WEB' in text
    diff = float(re.search(r'max abs difference, plm vs transformers: (\S+)', text).group(1))
    assert diff < 1e-4
