r"""UNILM issue #5 (6): one pre-trained checkpoint fine-tuned to understanding and generation,
and unified vs bidirectional-only vs no pre-training on both.

  python experiments/unilm/run.py --runs=runs/unilm_exp            # everything, then the table
  python experiments/unilm/run.py --runs=runs/unilm_exp --seeds=0  # one seed
  python experiments/unilm/run.py --runs=runs/unilm_es --translation   # en -> es generation
  bash experiments/unilm/run_device.sh runs/unilm_device   # larger, on one GPU/TPU

Every step is one `python -m plm.main` command (printed before it runs); a step whose
results already exist is skipped, so a rerun resumes. Writes results.md (the table and the
commands) under --runs and prints it.
"""
import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from arms import step  # pylint: disable=wrong-import-position  # experiments/arms.py

# Shared by every run: 128-token rows, 8,000-piece vocabulary; model.size from --size
# (default BERT-Tiny: 2 layers, hidden 128).
MODEL = ['--config=configs/unilm.py', '--config.model.max_len=128', '--config.data.seq_len=128']
# --translation: en -> es verse translation (copying the source scores near zero) instead of
# KJV -> WEB; the vocabulary and pre-training then cover both languages.
TRANSLATION = ['--config.data.languages=("en","es")', '--config.finetune.target=es_rv1909']
PRETRAININGS = {  # name -> objective overrides (the same budget for both)
    'unified': [],  # UNILM's mix: 1/3 bidirectional, 1/6 l2r, 1/6 r2l, 1/3 seq2seq
    'bidirectional': ['--config.objective.unilm_mix=(1.0,0.0,0.0,0.0)'],  # BERT-style MLM only
}
FINETUNE = ['--config.finetune.seq_len=128', '--config.finetune.skip_long=True',
            '--config.decode.batch_size=50']
JOBS = ('classify', 'generate')
# Each pre-trained checkpoint evaluated on held-out text under one mask at a time.
EVAL_MASKS = {'bidirectional': '(1.0,0.0,0.0,0.0)', 'left-to-right': '(0.0,1.0,0.0,0.0)',
              'right-to-left': '(0.0,0.0,1.0,0.0)', 'seq2seq': '(0.0,0.0,0.0,1.0)'}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--runs', default='runs/unilm_exp')
  parser.add_argument('--seeds', default='0,1')
  parser.add_argument('--pretrain_steps', type=int, default=1200)
  parser.add_argument('--classify_steps', type=int, default=200)
  parser.add_argument('--generate_steps', type=int, default=400)
  parser.add_argument('--inits', default='unified,bidirectional,none',
                      help='a subset runs only those fine-tunings (to run parts in parallel)')
  parser.add_argument('--size', default='tiny', help='model.size (plm/models/sizes.py)')
  parser.add_argument('--batch_size', type=int, default=32, help='pre-training rows per step')
  parser.add_argument('--generate_lr', type=float, default=1e-3)
  parser.add_argument('--generate_batch_size', type=int, default=32, help='generate: rows per step')
  parser.add_argument('--generate_warmup', type=int, default=30, help='generate: warmup steps')
  parser.add_argument('--test_examples', type=int, default=100, help='generate: test pairs decoded')
  parser.add_argument('--target_mask_rate', type=float, default=0.7,
                      help="generate: share of target tokens masked (UNILM's 0.7)")
  parser.add_argument('--translation', action='store_true', help='en -> es instead of KJV -> WEB')
  parser.add_argument('--target_positions', default='continue',
                      help="generate: 'continue' (UNILM) or 'restart' (README: the copy check)")
  parser.add_argument('--target_masking', default='random',
                      help="generate: 'random' (UNILM's target_mask_rate) or 'pseudo' (s2s-ft)")
  args = parser.parse_args()
  model = MODEL + [f'--config.model.size={args.size}'] + (TRANSLATION if args.translation else [])
  selected = args.inits.split(',')
  runs = os.path.abspath(args.runs)
  os.makedirs(runs, exist_ok=True)
  py = [sys.executable, '-m', 'plm.main']
  vocab = os.path.join(runs, 'pre_unified', 'vocab', 'spm.model')
  commands = []
  for name, extra in PRETRAININGS.items():
    if name not in selected and not (name == 'unified' and not os.path.exists(vocab)):
      continue
    workdir = os.path.join(runs, f'pre_{name}')
    cmd = py + model + extra + [f'--config.train.steps={args.pretrain_steps}',
                                f'--config.train.batch_size={args.batch_size}',
                                '--config.train.eval_every=100000', f'--workdir={workdir}']
    if name != 'unified':  # the unified run trains the vocabulary all runs share
      cmd.append(f'--config.data.vocab_path={vocab}')
    step(cmd, os.path.join(workdir, 'checkpoints', str(args.pretrain_steps)), workdir + '.log',
         commands)
    for mask, mix in EVAL_MASKS.items():  # the pre-trained LM under each of UNILM's masks
      cmd = py + model + ['--config.job=evaluate', f'--config.objective.unilm_mix={mix}',
                          f'--config.data.vocab_path={vocab}', f'--workdir={workdir}']
      log = os.path.join(runs, f'evalmask_{name}_{mask}.log')
      # every mask's evaluation writes the same results.json: done = its table in the log
      step(cmd, log if heldout_accuracy(log) is not None else '', log, commands)
  inits = {'unified': 'pre_unified', 'bidirectional': 'pre_bidirectional', 'none': None}
  for seed in [int(s) for s in args.seeds.split(',') if s]:
    for job in JOBS:
      for init, pre in inits.items():
        if init not in selected:
          continue
        workdir = os.path.join(runs, f'{job}_{init}_seed{seed}')
        init_from = os.path.join(runs, pre, 'checkpoints') if pre else ''
        steps = args.classify_steps if job == 'classify' else args.generate_steps
        own = ['--config.finetune.lr=1e-3'] if job == 'classify' else [
            f'--config.finetune.lr={args.generate_lr}',
            f'--config.finetune.target_mask_rate={args.target_mask_rate}',
            f'--config.finetune.target_positions={args.target_positions}',
            f'--config.finetune.target_masking={args.target_masking}',
            f'--config.finetune.batch_size={args.generate_batch_size}',
            f'--config.finetune.warmup_steps={args.generate_warmup}',
            f'--config.decode.max_test_examples={args.test_examples}']
        cmd = py + model + FINETUNE + own + [f'--config.job={job}', f'--config.seed={seed}',
                                       f'--config.finetune.steps={steps}',
                                       f'--config.init_from={init_from}',
                                       f'--config.data.vocab_path={vocab}', f'--workdir={workdir}']
        step(cmd, os.path.join(workdir, 'results.json'), workdir + '.log', commands)
  table = mask_table(runs) + '\n\n' + results_table(runs) + '\n\n' + wall_table(runs)
  text = table + '\n\nCommands (in order):\n\n```sh\n' + '\n'.join(commands) + '\n```\n'
  with open(os.path.join(runs, 'results.md'), 'w') as f:
    f.write(text)
  print(text)


def heldout_accuracy(log: str):
  """Masked-token accuracy and its unigram baseline from an evaluate job's log, or None.

  The job prints the held-out table (plm/progress.py format_table) with a header row
  '| set | head | loss | ... | accuracy | unigram loss | unigram accuracy | ...'; the
  columns are read by name from the last 'en' row. (The job's results.json would
  not do: every mask's evaluation writes the same {workdir}/results.json.)
  """
  if not os.path.exists(log):
    return None
  header, found = None, None
  with open(log) as f:
    for line in f:
      if not line.startswith('|'):
        continue
      cells = [c.strip() for c in line.strip().strip('|').split('|')]
      if cells[:2] == ['set', 'head']:
        header = cells
      elif header and len(cells) == len(header) and cells[0] == 'en':
        row = dict(zip(header, cells))
        found = (float(row['accuracy']), float(row['unigram accuracy']))
  return found


def mask_table(runs: str) -> str:
  rows = ['| pre-training | ' + ' | '.join(EVAL_MASKS) + ' |', '|---' * (len(EVAL_MASKS) + 1) + '|']
  for name in PRETRAININGS:
    got = [heldout_accuracy(os.path.join(runs, f'evalmask_{name}_{m}.log')) for m in EVAL_MASKS]
    rows.append(f'| {name} | ' + ' | '.join(f'{g[0]:.3f}' if g else '-' for g in got) + ' |')
  unigram = [heldout_accuracy(os.path.join(runs, f'evalmask_unified_{m}.log')) for m in EVAL_MASKS]
  rows.append('| unigram | ' + ' | '.join(f'{g[1]:.3f}' if g else '-' for g in unigram) + ' |')
  return '\n'.join(rows)


def wall_table(runs: str) -> str:
  """Each step's wall time (minutes, as run; runs sharing the machine are slower)."""
  rows = ['| step | wall time (min) |', '|---|---|']
  for path in sorted(glob.glob(os.path.join(runs, '*.seconds'))):  # arms.step saves them
    with open(path) as f:
      rows.append(f'| {os.path.basename(path)[:-len(".seconds")]} | {float(f.read()) / 60:.1f} |')
  return '\n'.join(rows)


def results_table(runs: str) -> str:
  rows = ['| pre-training | seed | genre accuracy (en test) | masked-target acc. (test) '
          '| BLEU / chrF (beam 5, 100 test verses) | copy-source BLEU / chrF '
          '| word-by-word BLEU / chrF |', '|---|---|---|---|---|---|---|']
  for init in ('unified', 'bidirectional', 'none'):
    for seed in range(10):
      got = {}
      for job in JOBS:
        path = os.path.join(runs, f'{job}_{init}_seed{seed}', 'results.json')
        if os.path.exists(path):
          with open(path) as f:
            got[job] = json.load(f)
      if not got:
        continue
      # results['test'][set][head]: the 'classify' head on en, 'seq2seq' on the one pair
      c = got.get('classify', {}).get('test', {}).get('en', {}).get('classify', {})
      g = got.get('generate', {})
      gt = next(iter(g.get('test', {}).values()), {}).get('seq2seq', {})
      d = g.get('decode', {})
      fmt = lambda x, spec: format(x, spec) if x is not None else '-'
      pair = lambda k: f"{fmt(d.get(k + 'bleu'), '.2f')} / {fmt(d.get(k + 'chrf'), '.1f')}"
      rows.append(f"| {init} | {seed} | {fmt(c.get('accuracy'), '.3f')} | "
                  f"{fmt(gt.get('accuracy'), '.3f')} | {pair('')} | {pair('copy_')} | "
                  f"{pair('dictionary_')} |")
  return '\n'.join(rows)


if __name__ == '__main__':
  main()
