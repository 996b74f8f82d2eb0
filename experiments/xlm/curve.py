"""Learning curves of experiments/xlm/run.py's pre-training runs: validation retrieval P@1
(mean of en->es and es->en) against tokens seen, from each run's TensorBoard summaries
(train.retrieval_every > 0).

  python experiments/xlm/curve.py runs/xlm_4k experiments/xlm/curve.png
"""
import glob
import json
import os
import sys

import numpy as np

from plm import viz


def curves(runs: str) -> dict:
  out = {}
  for work in sorted(glob.glob(os.path.join(runs, '*', 'tb'))):
    work = os.path.dirname(work)
    with open(os.path.join(work, 'config.json')) as f:
      config = json.load(f)
    tags = {t: v for t, v in viz.read_scalars(os.path.join(work, 'tb')).items()
            if t.startswith('retrieval_validation') and t.endswith('/p_at_1')}
    if not tags:
      continue
    steps = next(iter(tags.values()))[0]
    p_at_1 = np.mean([v for _, v in tags.values()], axis=0)
    tokens = steps * config['train']['batch_size'] * config['data']['seq_len']
    share = config['data']['tlm_share']
    out[f"{'MLM+TLM' if share else 'MLM'} seed {config['seed']}"] = (tokens / 1e6, p_at_1)
  return out


def main(runs: str, png: str):
  found = curves(runs)
  if not found:
    raise FileNotFoundError(f'no run under {runs} logged validation retrieval; pre-train with '
                            '--retrieval_every (train.retrieval_every) > 0')
  viz.save_curves_png(png, found, xlabel='tokens seen (millions)',
                      ylabel='validation P@1 (mean of both directions)',
                      title=f'XLM retrieval, {os.path.basename(os.path.abspath(runs))}')
  print(f'wrote {png}')


if __name__ == '__main__':
  main(*sys.argv[1:3])
