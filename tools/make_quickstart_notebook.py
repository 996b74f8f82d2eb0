"""Writes notebooks/xlm_quickstart.ipynb (edit the cells here, rerun, commit both)."""
import os
import nbformat as nbf
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
md("""# plm quickstart: masks, a small XLM, its loss curve and held-out table

Runs top to bottom on a Colab TPU, GPU or CPU runtime, or locally from a checkout of
this repository. The first cell installs plm if it is not importable; the second picks
model and run sizes for the accelerator it finds."""),
code("""# Install. From a checkout (this notebook's repository): pip install -e the checkout.
# On Colab: upload or clone your copy of the repository first and `%cd` into it, or set
# PLM_SOURCE to anything pip installs (a git URL, a path, a wheel).
import importlib.metadata, os, subprocess, sys
root = next((d for d in ('.', '..') if os.path.isfile(os.path.join(d, 'setup.py'))
             and os.path.isdir(os.path.join(d, 'plm'))), None)
if root:  # a checkout: its plm and configs/ come first on the path
  os.chdir(root)
  sys.path.insert(0, os.getcwd())
try:
  importlib.metadata.version('plm')  # installed, with its dependencies
except importlib.metadata.PackageNotFoundError:
  source = os.environ.get('PLM_SOURCE')
  if not root and not source:
    raise SystemExit('plm is not installed and this is not a checkout: clone or upload the '
                     'repository and %cd into it, or set PLM_SOURCE to what pip should install')
  target = ['-e', os.getcwd()] if root else [source]
  subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', *target], check=True)
import plm
print('plm from', os.path.dirname(plm.__file__))"""),
code("""# Device check: sizes for the accelerator found. PLM_NOTEBOOK_TINY=1 (the CI run) shrinks
# everything to seconds on a CPU.
import jax
backend = jax.default_backend()
print(backend, jax.devices())
SETTINGS = {  # configs/xlm.py, then these overrides
    'tpu': dict(tiny=False, steps=2000, batch_size=256),  # BERT-Mini XLM, minutes on a v2-8
    'gpu': dict(tiny=False, steps=1000, batch_size=64),
    'cpu': dict(tiny=True, steps=400, batch_size=32),  # configs/xlm.py:tiny, about a minute
}[backend if backend in ('tpu', 'gpu') else 'cpu']
if os.environ.get('PLM_NOTEBOOK_TINY'):
  SETTINGS = dict(tiny=True, steps=12, batch_size=8)
WORKDIR = os.environ.get('PLM_NOTEBOOK_WORKDIR', '/tmp/plm_quickstart')
print(SETTINGS, WORKDIR)"""),
md("""## Masks are data

Every attention mask is a pure function in `plm/masks.py`; the model only takes
them as arguments. UNILM's four objectives for one example with a 4-token source
and a 4-token target (row = query, column = key, dark = may attend):"""),
code("""import matplotlib.pyplot as plt
import numpy as np
from plm import viz
grids = viz.unilm_example_masks(4, 4)
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for ax, grid, title in zip(axes, grids, viz.TITLES):
  ax.imshow(grid, cmap='Blues', vmin=-0.3, vmax=1.0)
  ax.set_title(title)
  ax.axhline(3.5, color='crimson', ls='--'); ax.axvline(3.5, color='crimson', ls='--')
plt.show()"""),
md("""## Train

`configs/xlm.py` with the sizes picked above. Any field can be overridden, as on
the command line (`--config.train.steps=...`)."""),
code("""from configs import xlm
from plm.jobs import pretrain
config = xlm.get_config('tiny' if SETTINGS['tiny'] else '')
config.train.steps = SETTINGS['steps']
config.train.batch_size = SETTINGS['batch_size']
config.train.log_every = max(1, SETTINGS['steps'] // 8)
config.train.eval_every = config.train.checkpoint_every = SETTINGS['steps']
config.data.tfds_dir = os.environ.get('PLM_TFDS_DIR', config.data.tfds_dir)
results = pretrain.train_job(config, WORKDIR)  # also {WORKDIR}/results.json"""),
md("""## The loss curve, from the run's TensorBoard summaries"""),
code("""scalars = viz.read_scalars(os.path.join(WORKDIR, 'tb'))
steps, loss = scalars['train/loss']
plt.figure(figsize=(6, 3))
plt.plot(steps, loss, label='training loss')
plt.xlabel('step'); plt.ylabel('MLM cross-entropy'); plt.legend(); plt.show()
print(f'loss {loss[0]:.2f} at step {steps[0]} -> {loss[-1]:.2f} at step {steps[-1]}')"""),
md("""## Resume and evaluate

Running the same call again resumes from the newest checkpoint (here it is
already finished, so it only evaluates). The `evaluate` job reads the checkpoint
and prints the held-out table: `results['test'][language][head]`, one head per
objective (here `mlm`), beside the unigram baseline."""),
code("""results = pretrain.evaluate_job(config, WORKDIR)
for lang, heads in results['test'].items():
  m = heads['mlm']
  print(lang, f"accuracy {m['accuracy']:.3f} vs unigram {m['unigram_accuracy']:.3f}")"""),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={
    'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
    'language_info': {'name': 'python'}, 'accelerator': 'GPU'})
nbf.write(nb, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'notebooks', 'xlm_quickstart.ipynb'))
