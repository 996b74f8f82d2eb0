r"""MASS issue #13 (7): does pre-training help low-resource en->es translation, and which
span length k is best? Every arm is one `python -m plm.main` command on the shipped
Bibles (KJV en, Reina-Valera 1909 es), one shared vocabulary, one model size.

  python experiments/mass/run.py --runs=runs/mass_exp --phase=sanity   # budget check
  python experiments/mass/run.py --runs=runs/mass_exp --phase=main     # none / MASS / XLM
  python experiments/mass/run.py --runs=runs/mass_exp --phase=k        # k ablation
  python experiments/mass/run.py --runs=runs/mass_exp --phase=unsup    # unsupervised MT
  python experiments/mass/run.py --runs=runs/mass_exp --phase=table    # results.md

sanity: supervised en->es on ALL training pairs from scratch, to find a size and budget
  where translation is learned at all (it must beat copying the source and the
  word-by-word dictionary) before the arms are compared.
main: low-resource supervised MT (--pairs pairs) from no pre-training, from MASS
  (k=50%) and from XLM (MLM, same size, vocabulary and budget), each --seeds.
k: MASS pre-training with k = 1 token, 25%, 50% and 100%, each fine-tuned like `main`.
unsup: unsupervised en<->es (no pairs: denoising + on-the-fly back-translation on
  disjoint chapters) from the MASS (k=50%) and the XLM pre-training of `main`, and from
  no pre-training.

A step whose output exists is skipped, so a rerun resumes; each arm's wall time is
recorded beside its results (runs/<arm>.seconds).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import arms  # pylint: disable=wrong-import-position  # experiments/arms.py

K_ARMS = {'1 token': ['--config.objective.mass_span_tokens=1'],
          '25%': ['--config.objective.mass_span=0.25'],
          '50%': ['--config.objective.mass_span=0.5'],
          '100%': ['--config.objective.mass_span=1.0']}


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--runs', default='runs/mass_exp')
  p.add_argument('--phase', default='sanity', choices=('sanity', 'main', 'k', 'unsup', 'table'))
  p.add_argument('--size', default='tiny', help='model.size of every arm (plm/models/sizes.py)')
  p.add_argument('--seq_len', type=int, default=64, help='tokens per verse / per side')
  p.add_argument('--vocab_size', type=int, default=8000)
  p.add_argument('--pretrain_steps', type=int, default=2000)
  p.add_argument('--mt_steps', type=int, default=2000)
  p.add_argument('--sanity_steps', type=int, default=3000)
  p.add_argument('--pairs', type=int, default=3000, help='training pairs of the low-resource arms')
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--lr', type=float, default=1e-3)
  p.add_argument('--seeds', default='0')
  p.add_argument('--test_examples', type=int, default=400)
  args = p.parse_args()
  runs = os.path.abspath(args.runs)
  os.makedirs(runs, exist_ok=True)
  commands = []
  py = [sys.executable, '-m', 'plm.main']
  size = [f'--config.model.size={args.size}', f'--config.data.seq_len={args.seq_len}',
          f'--config.data.vocab_size={args.vocab_size}', f'--config.train.batch_size={args.batch}',
          f'--config.finetune.batch_size={args.batch}']
  mass = py + ['--config=configs/mass.py'] + size + [
      f'--config.objective.num_predictions={args.seq_len // 2}',
      f'--config.mt.src_len={args.seq_len}', f'--config.mt.tgt_len={args.seq_len}',
      f'--config.decode.max_target_len={args.seq_len}']
  vocab = f'{runs}/vocab/vocab/spm.model'
  arms.step(mass + ['--config.job=vocab', f'--workdir={runs}/vocab'], vocab, f'{runs}/vocab.log',
       commands)
  mass += [f'--config.data.vocab_path={vocab}', '--config.train.eval_every=0',
           f'--config.optim.lr={args.lr}', f'--config.finetune.lr={args.lr}',
           f'--config.decode.max_test_examples={args.test_examples}']
  mt = ['--config.job=mt', '--config.finetune.warmup_steps=100']
  if args.phase == 'sanity':
    work = f'{runs}/sanity_all_pairs'
    arms.step(mass + mt + [f'--config.finetune.steps={args.sanity_steps}', f'--workdir={work}'],
         f'{work}/results.json', f'{work}.log', commands)
  seeds = [int(s) for s in args.seeds.split(',')]
  low = mt + [f'--config.mt.train_pairs={args.pairs}', f'--config.finetune.steps={args.mt_steps}']
  pre = [f'--config.train.steps={args.pretrain_steps}']
  if args.phase == 'main':
    xlm = (py + ['--config=configs/xlm.py'] + size + [
        f'--config.data.vocab_path={vocab}', '--config.train.eval_every=0',
        f'--config.optim.lr={args.lr}'])
    arms.step(xlm + pre + [f'--workdir={runs}/xlm'], f'{runs}/xlm/results.json', f'{runs}/xlm.log',
         commands)
    arms.step(mass + pre + [f'--workdir={runs}/mass_k50'], f'{runs}/mass_k50/results.json',
         f'{runs}/mass_k50.log', commands)
    for seed in seeds:
      for name, init in (('none', []),
                         ('mass', [f'--config.init_from={runs}/mass_k50/checkpoints']),
                         ('xlm', [f'--config.init_from={runs}/xlm/checkpoints'])):
        work = f'{runs}/mt_{name}_seed{seed}'
        arms.step(mass + low + init + [f'--config.seed={seed}', f'--workdir={work}'],
             f'{work}/results.json', f'{work}.log', commands)
  if args.phase == 'k':
    for name, flags in K_ARMS.items():
      tag = name.replace(' ', '').replace('%', '')
      if tag == '100':  # the span is the whole sentence: a slot for each of its tokens
        flags = flags + [f'--config.objective.num_predictions={args.seq_len - 2}']
      arms.step(mass + pre + flags + [f'--workdir={runs}/mass_k{tag}'],
           f'{runs}/mass_k{tag}/results.json', f'{runs}/mass_k{tag}.log', commands)
      for seed in seeds:  # k = 50% is the main phase's MASS arm: the same run, not redone
        work = f'{runs}/mt_mass_seed{seed}' if tag == '50' else f'{runs}/mt_k{tag}_seed{seed}'
        arms.step(mass + low + [f'--config.init_from={runs}/mass_k{tag}/checkpoints',
                           f'--config.seed={seed}', f'--workdir={work}'],
             f'{work}/results.json', f'{work}.log', commands)
  if args.phase == 'unsup':  # no pairs at all: dae + back-translation on disjoint chapters
    unsup = ['--config.job=mt', '--config.finetune.warmup_steps=100',
             '--config.mt.unsupervised=True', f'--config.finetune.steps={args.mt_steps}']
    for seed in seeds:
      for name, ckpt in (('mass', 'mass_k50'), ('xlm', 'xlm'), ('none', '')):
        work = f'{runs}/unsup_{name}_seed{seed}'
        init = [f'--config.init_from={runs}/{ckpt}/checkpoints'] if ckpt else []
        arms.step(mass + unsup + init + [f'--config.seed={seed}', f'--workdir={work}'],
             f'{work}/results.json', f'{work}.log', commands)
  with open(f'{runs}/commands_{args.phase}.sh', 'w') as f:
    f.write('\n'.join(commands) + '\n')
  text = table(runs)
  with open(f'{runs}/results.md', 'w') as f:
    f.write(text)
  print(text)


def table(runs: str) -> str:
  """One row per finished mt run: BLEU and chrF with both baselines, and wall times."""
  rows = ['| run | BLEU | chrF | copy BLEU / chrF | dictionary BLEU / chrF | masked-target acc. '
          '| unigram acc. | pre-training s | fine-tuning s |', '|' + '---|' * 9]
  for name in sorted(os.listdir(runs)):
    path = f'{runs}/{name}/results.json'
    if not (name.startswith(('mt_', 'sanity', 'unsup_')) and os.path.exists(path)):
      continue
    with open(path) as f:
      r = json.load(f)
    t, (head,) = r['translation'], r['test'].values()
    init = r.get('init_from') or ''
    pre = arms.seconds(init.rsplit('/checkpoints', 1)[0]) if init else '-'
    rows.append(f"| {name} | {t['model']['bleu']:.2f} | {t['model']['chrf']:.1f} | "
                f"{t['copy_source']['bleu']:.2f} / {t['copy_source']['chrf']:.1f} | "
                f"{t['word_dictionary']['bleu']:.2f} / {t['word_dictionary']['chrf']:.1f} | "
                f"{head['mt']['accuracy']:.3f} | {head['mt']['unigram_accuracy']:.3f} | {pre} | "
                f'{arms.seconds(f"{runs}/{name}")} |')
  return '\n'.join(rows) + '\n'


if __name__ == '__main__':
  main()
