"""ERNIE vs BERT (the same T-encoder, rows, tokens and steps, no entities) on entity typing and
relation classification; the table of experiments/ernie/README.md.

  python experiments/ernie/run.py --work=/tmp/ernie_exp --vectors=runs/transe/entities.npz \
      --arm=ernie &   # and, in parallel, --arm=bert; then --table
  python experiments/ernie/run.py --work=/tmp/ernie_exp --table

One lane per arm: pre-train, then fine-tune each task with each seed. Every step is resumable
(rerun the same command; a finished step is skipped) and timed (<step>.seconds).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from arms import seconds, step  # pylint: disable=g-import-not-at-top,wrong-import-position

TASKS, SEEDS, ARMS = ('typing', 'relation'), (0, 1), ('ernie', 'bert')
COMMON = ['--config.data.vocab_size=2000', '--config.data.seq_len=80', '--config.model.max_len=80',
          '--config.ernie.max_pairs=0', '--config.ernie.max_examples=4000',
          '--config.ernie.max_eval_examples=1000', '--config.finetune.seq_len=80']
PRETRAIN = ['--config.train.steps=800', '--config.train.batch_size=32',
            '--config.train.checkpoint_every=200']
FINETUNE = ['--config.finetune.steps=300', '--config.finetune.batch_size=32',
            '--config.finetune.lr=1e-3']


def lane(args):
  w, commands = args.work, []
  os.makedirs(w, exist_ok=True)
  base = [sys.executable, '-m', 'plm.main', '--config=configs/ernie.py:tiny',
          f'--config.ernie.entity_vectors={args.vectors}',
          f'--config.ernie.corpus_dir={w}/linked', f'--config.data.vocab_path={w}/vocab/spm.model',
          f'--config.ernie.entities={args.arm == "ernie"}'] + COMMON
  # The vocabulary first (both lanes: the first writes it, atomically; the other reuses it).
  step(base + ['--config.job=vocab', f'--workdir={w}'], f'{w}/vocab/spm.model', f'{w}/vocab.log',
       commands)
  pre = f'{w}/{args.arm}_pretrain'
  step(base + PRETRAIN + [f'--workdir={pre}'], f'{pre}/results.json', f'{pre}.log', commands)
  for task in TASKS:
    for seed in SEEDS:
      ft = f'{w}/{args.arm}_{task}_s{seed}'
      step(base + FINETUNE + ['--config.job=ernie_finetune', f'--config.finetune.task={task}',
                              f'--config.seed={seed}', f'--config.init_from={pre}/checkpoints',
                              f'--workdir={ft}'], f'{ft}/results.json', f'{ft}.log', commands)
  with open(f'{w}/{args.arm}_commands.txt', 'w') as f:
    f.write('\n'.join(commands) + '\n')


def table(args):
  w = args.work
  lines = ['| task | arm | seed | accuracy | micro-F1 | macro-F1 | majority acc | majority micro-F1 '
           '| test examples | fine-tune s |', '|---|---|---|---|---|---|---|---|---|---|']
  for task in TASKS:
    for arm in ARMS:
      for seed in SEEDS:
        ft = f'{w}/{arm}_{task}_s{seed}'
        try:
          s = json.load(open(f'{ft}/results.json'))['scores']
        except OSError:
          continue
        m, b = s['model'], s['majority']
        lines.append(f"| {task} | {arm} | {seed} | {m['accuracy']:.3f} | {m['micro_f1']:.3f} | "
                     f"{m['macro_f1']:.3f} | {b['accuracy']:.3f} | {b['micro_f1']:.3f} | "
                     f"{m['examples']} | {seconds(ft)} |")
  lines.append('')
  lines.append('| arm | pre-train s | test mlm acc | nsp acc | dea acc |')
  lines.append('|---|---|---|---|---|')
  for arm in ARMS:
    pre = f'{w}/{arm}_pretrain'
    try:
      t = json.load(open(f'{pre}/results.json'))['test']['linked']
    except OSError:
      continue
    acc = lambda h: f"{t[h]['accuracy']:.3f}" if h in t else '-'
    lines.append(f"| {arm} | {seconds(pre)} | {acc('mlm')} | {acc('nsp')} | {acc('dea')} |")
  print('\n'.join(lines))


if __name__ == '__main__':
  p = argparse.ArgumentParser()
  p.add_argument('--work', required=True)
  p.add_argument('--vectors', default='')
  p.add_argument('--arm', choices=ARMS)
  p.add_argument('--table', action='store_true')
  a = p.parse_args()
  table(a) if a.table else lane(a)
