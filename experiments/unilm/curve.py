"""Learning curves of generate runs: held-out (validation) masked-target accuracy against
tokens seen (steps x finetune.batch_size x finetune.seq_len row slots), from each run's
TensorBoard summaries (finetune.eval_every > 0).

  python experiments/unilm/curve.py experiments/unilm/copy_curve.png \
      continue=runs/copy_continue restart=runs/copy_restart
"""
import json
import os
import sys

from plm import viz


def curve(workdir: str):
  with open(os.path.join(workdir, 'config.json')) as f:
    fc = json.load(f)['finetune']
  tags = {t: v for t, v in viz.read_scalars(os.path.join(workdir, 'tb')).items()
          if t.startswith('validation') and t.endswith('seq2seq/accuracy')}
  if len(tags) != 1:
    raise ValueError(f'{workdir}: expected one validation seq2seq accuracy, found {sorted(tags)}; '
                     'fine-tune with finetune.eval_every > 0')
  steps, accuracy = next(iter(tags.values()))
  return steps * fc['batch_size'] * fc['seq_len'] / 1e6, accuracy, f"{fc['source']} -> {fc['target']}"


def main(png: str, *runs: str):
  got = {label: curve(w) for label, w in (arg.split('=', 1) for arg in runs)}
  pairs = sorted({pair for _, _, pair in got.values()})
  viz.save_curves_png(png, {label: (x, y) for label, (x, y, _) in got.items()},
                      xlabel='tokens seen (millions of row slots)',
                      ylabel='validation masked-target accuracy',
                      title=f"UNILM seq2seq fine-tuning from scratch, {', '.join(pairs)}")
  print(f'wrote {png}')


if __name__ == '__main__':
  main(*sys.argv[1:])
