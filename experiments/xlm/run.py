r"""XLM issue #4 (6): MLM alone vs MLM+TLM, same vocabulary, budget and seeds, judged by
cross-lingual retrieval (P@1) and zero-shot cross-lingual genre classification.

  python experiments/xlm/run.py --runs=runs/xlm_exp             # everything, then the table
  python experiments/xlm/run.py --runs=runs/xlm_exp --seeds=0   # one seed
  python experiments/xlm/run.py --runs=runs/xlm_4k --steps=4000 --retrieval_every=1000
  bash experiments/xlm/run_device.sh runs/xlm_device    # larger, on one GPU/TPU

Every step is one `python -m plm.main` command (printed before it runs); a step whose
output exists is skipped, so a rerun resumes. Writes results.md under --runs and prints it.
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from arms import seconds, step  # pylint: disable=wrong-import-position  # experiments/arms.py

# Defaults: BERT-Tiny (2 layers, hidden 128) XLM on en + es, 128-token rows, 8,000-piece
# joint BPE, 1,000 steps of batch 32; the flags scale it (run_device.sh).
OBJECTIVES = {'MLM': '0', 'MLM+TLM': '0.5'}  # name -> data.tlm_share
RETRIEVAL = {'mean': [], 'mean, centred': ['--config.retrieval.center=True']}
CLASSIFY = ['--config.job=classify', '--config.finetune.skip_long=True',
            "--config.finetune.train_language=en", "--config.finetune.test_languages=('en','es')"]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--runs', default='runs/xlm_exp')
  parser.add_argument('--seeds', default='0,1')
  parser.add_argument('--steps', type=int, default=1000, help='pre-training steps')
  parser.add_argument('--size', default='tiny', help='model.size (plm/models/sizes.py)')
  parser.add_argument('--batch_size', type=int, default=32, help='pre-training rows per step')
  parser.add_argument('--lr', type=float, default=1e-3, help='pre-training peak learning rate')
  parser.add_argument('--objectives', default=','.join(OBJECTIVES),
                      help='which pre-training arms, in this order (the first is the sanity arm)')
  parser.add_argument('--retrieval_every', type=int, default=0,
                      help='validation P@1 every N pre-training steps (the learning curve)')
  args = parser.parse_args()
  model = ['--config=configs/xlm.py', f'--config.model.size={args.size}',
           '--config.data.seq_len=128']
  steps = args.steps
  pretrain = [f'--config.train.steps={steps}', '--config.train.eval_every=100000',
              f'--config.train.batch_size={args.batch_size}', f'--config.optim.lr={args.lr}',
              f'--config.train.retrieval_every={args.retrieval_every}']
  objectives = args.objectives.split(',')
  if unknown := set(objectives) - set(OBJECTIVES):
    sys.exit(f'unknown --objectives {sorted(unknown)}; choose from {list(OBJECTIVES)}')
  runs = os.path.abspath(args.runs)
  os.makedirs(runs, exist_ok=True)
  py = [sys.executable, '-m', 'plm.main']
  commands = []
  vocab = os.path.join(runs, 'vocab', 'vocab', 'spm.model')
  step(py + model + ['--config.job=vocab', f'--workdir={runs}/vocab'], vocab,
       f'{runs}/vocab.log', commands)
  shared = [f'--config.data.vocab_path={vocab}']
  for seed in [int(s) for s in args.seeds.split(',')]:
    for name in objectives:
      share = OBJECTIVES[name]
      work = f'{runs}/tlm{share}_seed{seed}'
      run = py + model + shared + [f'--config.seed={seed}']
      step(run + pretrain + [f'--config.data.tlm_share={share}', f'--workdir={work}'],
           f'{work}/checkpoints/{steps}', f'{work}.log', commands)
      for i, extra in enumerate(RETRIEVAL.values()):
        out = f'{work}/retrieval{i}.json'
        step(run + ['--config.job=retrieve', f'--config.retrieval.output={out}', *extra,
                    f'--workdir={work}'], out, f'{work}.retrieve{i}.log', commands)
      step(run + CLASSIFY + [f'--config.init_from={work}/checkpoints',
                             f'--workdir={work}_classify'],
           f'{work}_classify/results.json', f'{work}_classify.log', commands)
    work = f'{runs}/scratch_seed{seed}_classify'  # no pre-training: what zero-shot owes to it
    step(py + model + shared + [f'--config.seed={seed}'] + CLASSIFY + [f'--workdir={work}'],
         f'{work}/results.json', f'{work}.log', commands)
  text = results_table(runs, [int(s) for s in args.seeds.split(',')])
  text += '\n\nCommands (in order):\n\n```sh\n' + '\n'.join(commands) + '\n```\n'
  with open(os.path.join(runs, 'results.md'), 'w') as f:
    f.write(text)
  print(text)


def load(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def results_table(runs: str, seeds: list[int]) -> str:
  """Per-seed rows, then mean and spread (max - min) per objective.

  Mean rank averages both directions over the held-out pairs (chance: (pairs + 1) / 2).
  """
  head = ['| pre-training | seed | ' + ' | '.join(
      f'P@1 en->es ({r}) | P@1 es->en ({r}) | mean rank ({r})' for r in RETRIEVAL) +
      ' | genre acc. en (train language) | genre acc. es (zero-shot) | pre-training s |']
  head.append('|' + '---|' * (head[0].count('|') - 1))
  rows, summary = [], []
  names = dict(OBJECTIVES, none=None)
  for name, share in names.items():
    per_seed = []
    for seed in seeds:
      work = f'{runs}/tlm{share}_seed{seed}' if share else f'{runs}/scratch_seed{seed}'
      if not os.path.exists(f'{work}_classify/results.json'):
        continue  # an arm not run (--objectives) or not finished: no row
      values = []
      for i in range(len(RETRIEVAL)):
        r = load(f'{work}/retrieval{i}.json') if share else None
        ways = [m for k, m in r.items() if k != 'setting'] if r else []
        values += ([ways[0]['p_at_1'], ways[1]['p_at_1'],
                    (ways[0]['mean_rank'] + ways[1]['mean_rank']) / 2] if r else [None] * 3)
      c = load(f'{work}_classify/results.json')['test']  # results['test'][lang][head]
      values += [c['en']['classify']['accuracy'], c['es']['classify']['accuracy']]
      per_seed.append(values)
      rows.append(f'| {name} | {seed} | ' + ' | '.join(_fmt(v) for v in values) +
                  f' | {seconds(work) if share else "-"} |')
    columns = list(zip(*per_seed))
    if len(per_seed) < 2:
      continue  # mean and spread need two seeds
    summary.append(f'| **{name}** | mean (spread) | ' + ' | '.join(
        '-' if None in col else f'**{_fmt(statistics.mean(col))}** ({_fmt(max(col) - min(col))})'
        for col in columns) + ' | |')
  return '\n'.join(head + rows + summary)


def _fmt(v):
  return '-' if v is None else f'{v:.1f}' if v > 1 else f'{v:.3f}'


if __name__ == '__main__':
  main()
