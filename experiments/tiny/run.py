r"""ERNIE-Tiny on the English Bible: teacher, distilled student, the same student without
distillation, and the compressed models, each tested on held-out verses.

  nice python experiments/tiny/run.py --runs=runs/tiny          # every arm, then the table
  nice python experiments/tiny/run.py --runs=runs/tiny --phase=table

Each arm is one `python -m plm.main` command (printed, logged to <runs>/<arm>.log, its
wall time in <arm>.seconds); a rerun skips finished arms and resumes the unfinished one.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.dirname(os.path.dirname(HERE))]
# pylint: disable=g-import-not-at-top,wrong-import-position
import arms
import jax
import numpy as np

from plm import checkpoint

PY = [sys.executable, '-m', 'plm.main', '--config=configs/tiny.py']


def commands(runs: str, tfds: str) -> list:
  """(arm, command) in order; each arm's workdir is <runs>/<arm>."""
  w = lambda arm: f'--workdir={runs}/{arm}'
  data = [f'--config.data.tfds_dir={tfds}'] if tfds else []
  vocab = f'--config.data.vocab_path={runs}/teacher/vocab/spm.model'
  return [
      ('teacher', PY[:-1] + ['--config=configs/tiny.py:teacher', w('teacher')] + data),
      ('student', PY + [f'--config.distill.teacher={runs}/teacher', w('student')] + data),
      ('scratch', PY + ['--config.job=train', vocab, w('scratch')] + data),
      ('teacher_int8', PY + ['--config.job=compress', f'--config.compress.source={runs}/teacher',
                             '--config.compress.quantize=int8', w('teacher_int8')] + data),
      ('student_int8', PY + ['--config.job=compress', f'--config.compress.source={runs}/student',
                             '--config.compress.quantize=int8', w('student_int8')] + data),
      ('teacher_pruned', PY + ['--config.job=compress',
                               f'--config.compress.source={runs}/teacher',
                               '--config.compress.prune_heads=0.25',
                               '--config.compress.prune_ff=0.25', w('teacher_pruned')] + data),
  ] + [(f'cls_{arm}', PY[:-1] + [f'--config=configs/tiny.py{variant}', '--config.job=classify',
                                 f'--config.init_from={runs}/{arm}/checkpoints', vocab,
                                 '--config.finetune.seq_len=64', '--config.finetune.skip_long=True',
                                 w(f'cls_{arm}')] + data)
        for arm, variant in (('teacher', ':teacher'), ('student', ''), ('scratch', ''))]


def genre(runs: str, arm: str) -> str:
  """Test genre accuracy of the arm's classify run ('-' if none)."""
  try:
    with open(os.path.join(runs, f'cls_{arm}', 'results.json')) as f:
      return f"{json.load(f)['test']['en']['classify']['accuracy']:.3f}"
  except OSError:
    return '-'


def param_bytes(workdir: str) -> int:
  """Bytes of the saved params a deployed model needs (not the distillation projection)."""
  shapes = checkpoint.saved_params(os.path.join(workdir, 'checkpoints'))[1]
  shapes.pop('kd_projection', None)
  return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(shapes))


def table(runs: str) -> str:
  rows = ['| arm | layers x hidden | params (MB) | held-out MLM loss | perplexity | accuracy '
          '| unigram accuracy | wall (s) | genre accuracy |', '|---|---|---|---|---|---|---|---|---|']
  for arm in ('teacher', 'student', 'scratch', 'teacher_int8', 'student_int8',
              'teacher_pruned'):
    path = os.path.join(runs, arm, 'results.json')
    if not os.path.exists(path):
      continue
    with open(path) as f:
      r = json.load(f)
    with open(os.path.join(runs, arm, 'config.json')) as f:
      m = json.load(f)['model']
    mlm = r['test']['en']['mlm']
    mb = f'{param_bytes(os.path.join(runs, arm)) / 1e6:.2f}'
    rows.append(f"| {arm} | {m['layers']} x {m['hidden']} | {mb} | {mlm['loss']:.3f} | "
                f"{mlm['ppl']:.1f} | {mlm['accuracy']:.3f} | {mlm['unigram_accuracy']:.3f} | "
                f'{arms.seconds(os.path.join(runs, arm))} | {genre(runs, arm)} |')
  return '\n'.join(rows)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--runs', default='runs/tiny')
  ap.add_argument('--tfds_dir', default='', help='data.tfds_dir ("" = the config default)')
  ap.add_argument('--phase', default='all', choices=('all', 'table'))
  args = ap.parse_args()
  os.makedirs(args.runs, exist_ok=True)
  done = []
  if args.phase == 'all':
    for arm, cmd in commands(args.runs, args.tfds_dir):
      arms.step(cmd, os.path.join(args.runs, arm, 'results.json'),
                os.path.join(args.runs, f'{arm}.log'), done)
  print(table(args.runs))


if __name__ == '__main__':
  main()
