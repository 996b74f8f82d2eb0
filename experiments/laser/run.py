r"""LASER issue #14 (6): language-agnostic sentence vectors on held-out Bible verses, LASER
against an XLM MLM+TLM run of comparable training time, on one vocabulary.

  python experiments/laser/run.py --runs=runs/laser_exp --phase=train   # vocab, LASER, XLM
  python experiments/laser/run.py --runs=runs/laser_exp --phase=eval    # table -> results.md

train: one 8,000-piece BPE over en (KJV), es (RV1909) and en_web; LASER
  (configs/laser.py: en->es, es->en, en_web->es, en_web->en) and XLM MLM+TLM
  (configs/xlm.py, data.tlm_share=0.5), each a `python -m plm.main` command whose wall
  time is saved beside its log (a step whose output exists is skipped: reruns resume).
eval, for every run:
  xsim: error rate of finding each test verse's translation among all test verses
    (en->es and es->en), by cosine and by ratio margin (plm/evaluate/mining.py).
  mining (BUCC-style): the gold pairs of a third of the split's chapters hidden among
    verses of the other chapters (en from one third, es from the other: no parallel
    distractor) and --distractors verses per language from disjoint train chapters;
    mined by margin and by plain cosine, each with its threshold chosen for F1 on the
    validation split, precision/recall/F1 on test.
  zero-shot: the classify job on frozen sentence vectors (finetune.freeze_encoder),
    genre labels in English only, accuracy on English and Spanish test verses.
"""
import argparse
import json
import os
import sys
import time
import zlib

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))
import arms as runner  # pylint: disable=wrong-import-position  # experiments/arms.py
from plm import workdir as workdir_lib  # pylint: disable=wrong-import-position
from plm.data import bible  # pylint: disable=wrong-import-position
from plm.evaluate import embedding, mining  # pylint: disable=wrong-import-position

PAIR = ('en_kjv', 'es_rv1909')  # the two sides of every table
LANGS = ('en', 'es')


def chapter_third(ref: str, salt: str) -> int:
  """0, 1 or 2 for a verse's chapter, fixed by crc32 (independent of the split's own hash)."""
  book, chapter, _ = bible.parse_reference(ref)
  return zlib.crc32(f'{salt}|{book} {chapter}'.encode('utf-8')) % 3


def bucc_set(split: str, data_dir: str, distractors: int, seed: int):
  """(en sentences, es sentences, gold (i, j) pairs): the split's chapters in thirds: gold
  pairs from third 0, English only from third 1, Spanish only from third 2, and
  `distractors` verses per language from disjoint halves of the train chapters."""
  verses = [dict(bible.load_verses(t, split, data_dir)) for t in PAIR]
  refs = [r for r, _ in bible.load_verses(PAIR[0], split, data_dir)
          if verses[0].get(r, '').strip() and verses[1].get(r, '').strip()]
  third = {r: chapter_third(r, 'bucc') for r in refs}
  src = [verses[0][r] for r in refs if third[r] in (0, 1)]
  tgt = [verses[1][r] for r in refs if third[r] in (0, 2)]
  gold_refs = [r for r in refs if third[r] == 0]
  rng = np.random.default_rng(seed)
  for side, (translation, out) in enumerate(zip(PAIR, (src, tgt))):
    train = [t for r, t in bible.load_verses(translation, 'train', data_dir)
             if t.strip() and chapter_third(r, 'distractor') == side]
    out.extend(train[i] for i in rng.permutation(len(train))[:distractors])
  index = [{}, {}]
  for side, lines in enumerate((src, tgt)):
    for i, line in enumerate(lines):
      index[side].setdefault(line, i)  # a repeated text: its first occurrence is the gold
  gold = [(index[0][verses[0][r]], index[1][verses[1][r]]) for r in gold_refs]
  return src, tgt, gold


class Embedder:
  """Sentence vectors of one run (its own embed.* settings and language ids)."""

  def __init__(self, workdir: str, pooling: str | None):
    config = workdir_lib.read_config(workdir)
    if pooling:
      config.embed.pooling = pooling
    self.loaded = workdir_lib.load(workdir, config)
    c, tok = self.loaded.config, self.loaded.tokenizer
    self.fn = embedding.make_embedder(self.loaded.model, c, tok.pad_id)
    self.max_len = c.model.get('max_len')
    self.lang = {l: (tuple(c.data.languages).index(l) if c.model.get('num_languages') else 0)
                 for l in LANGS}

  def __call__(self, lines, lang: str) -> np.ndarray:
    tok = self.loaded.tokenizer
    rows = embedding.encode_lines(tok, lines, self.max_len, lang)
    return embedding.embed_rows(self.fn, self.loaded.params, rows, tok.pad_id, 128,
                                self.lang[lang])


def xsim_table(embed, data_dir: str, max_tokens: int) -> dict:
  """xsim error rates on the test verses that fit max_tokens, both ways, two margins."""
  pairs = [p for p in bible_pairs('test', data_dir)]
  tok = embed.loaded.tokenizer
  ids = [tok.encode([p[s] for p in pairs]) for s in (0, 1)]
  pairs = [p for p, a, b in zip(pairs, *ids) if max(len(a), len(b)) + 2 <= max_tokens]
  x, y = embed([p[0] for p in pairs], 'en'), embed([p[1] for p in pairs], 'es')
  out = {'pairs': len(pairs)}
  for margin in ('absolute', 'ratio'):
    out[margin] = mining.xsim_error(x, y, margin=margin)
  return out


def bible_pairs(split: str, data_dir: str):
  from plm.evaluate import retrieval  # pylint: disable=g-import-not-at-top
  from plm.data import bible_tasks  # pylint: disable=g-import-not-at-top
  return retrieval.unique_pairs(bible_tasks.parallel_verses(list(PAIR), split, data_dir))


def mining_table(embed, data_dir: str, distractors: int, seed: int) -> dict:
  """BUCC-style F1 on test with the threshold chosen on validation, margin vs cosine."""
  vectors = {}
  for split in ('validation', 'test'):
    src, tgt, gold = bucc_set(split, data_dir, distractors, seed)
    vectors[split] = (embed(src, 'en'), embed(tgt, 'es'), gold, len(src), len(tgt))
  out = {}
  for name, margin in (('margin (ratio)', 'ratio'), ('cosine', 'absolute')):
    x, y, gold, _, _ = vectors['validation']
    gold_set = set(gold)
    mined = mining.mine(x, y, margin=margin)
    chosen = mining.best_threshold([(s, (i, j) in gold_set) for s, i, j in mined], len(gold))
    x, y, gold, n_src, n_tgt = vectors['test']
    result = mining.f1_against_gold(mining.mine(x, y, margin=margin,
                                                threshold=chosen['threshold']), gold)
    out[name] = dict(result, threshold=chosen['threshold'], validation_f1=chosen['f1'],
                     sentences=(n_src, n_tgt))
  return out


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--runs', default='runs/laser_exp')
  p.add_argument('--phase', default='train', choices=('train', 'eval'))
  p.add_argument('--laser_steps', type=int, default=1500)
  p.add_argument('--xlm_steps', type=int, default=1500)
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--seq_len', type=int, default=64)
  p.add_argument('--distractors', type=int, default=4000, help='train verses per language')
  p.add_argument('--classify_steps', type=int, default=300)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--arms', default='laser,xlm_tlm', help='runs to train or evaluate')
  args = p.parse_args()
  runs = os.path.abspath(args.runs)
  os.makedirs(runs, exist_ok=True)
  py, commands = [sys.executable, '-m', 'plm.main'], []
  vocab = f'{runs}/vocab/vocab/spm.model'
  common = [f'--config.data.vocab_path={vocab}', f'--config.train.batch_size={args.batch}',
            f'--config.seed={args.seed}']
  runner.step(py + ['--config=configs/laser.py', '--config.job=vocab',
                    '--config.data.vocab_size=8000', f'--workdir={runs}/vocab'], vocab,
              f'{runs}/vocab.log', commands)
  arms = {
      'laser': py + ['--config=configs/laser.py', f'--config.train.steps={args.laser_steps}',
                     f'--config.laser.src_len={args.seq_len}',
                     f'--config.laser.tgt_len={args.seq_len}', '--config.train.eval_every=0'],
      'xlm_tlm': py + ['--config=configs/xlm.py', '--config.model.size=tiny',
                       f'--config.data.seq_len={args.seq_len}', '--config.data.tlm_share=0.5',
                       f'--config.train.steps={args.xlm_steps}', '--config.optim.lr=1e-3',
                       '--config.train.eval_every=0'],
  }
  arms = {name: arms[name] for name in args.arms.split(',')}
  if args.phase == 'train':
    for name, cmd in arms.items():
      runner.step(cmd + common + [f'--workdir={runs}/{name}'], f'{runs}/{name}/results.json',
           f'{runs}/{name}.log', commands)
  else:
    data_dir = os.path.expanduser('~/tensorflow_datasets')
    results = {}
    if os.path.exists(f'{runs}/results.json'):  # arms evaluated before are kept
      with open(f'{runs}/results.json') as f:
        results = json.load(f)
    for name, cmd in arms.items():
      work = f'{runs}/{name}'
      zero = f'{runs}/{name}_zeroshot'
      runner.step(cmd + common + [
          '--config.job=classify', f'--config.init_from={work}/checkpoints',
          '--config.finetune.freeze_encoder=True', "--config.finetune.train_language=en",
          "--config.finetune.test_languages=('en','es')",
          f'--config.finetune.seq_len={args.seq_len}', '--config.finetune.skip_long=True',
          f'--config.finetune.steps={args.classify_steps}', f'--workdir={zero}'],
                  f'{zero}/results.json', f'{zero}.log', commands)
      embed = Embedder(work, None)
      t0 = time.time()
      results[name] = dict(xsim=xsim_table(embed, data_dir, args.seq_len),
                           mining=mining_table(embed, data_dir, args.distractors, args.seed),
                           train_seconds=runner.seconds(work),
                           pooling=embed.loaded.config.embed.pooling)
      results[name]['eval_seconds'] = round(time.time() - t0)
      with open(f'{zero}/results.json') as f:
        z = json.load(f)
      results[name]['zero_shot'] = {l: z['test'][l]['classify']['accuracy'] for l in LANGS}
      results[name]['majority'] = z['majority_share']
    with open(f'{runs}/results.json', 'w') as f:
      json.dump(results, f, indent=1)
    text = table(results)
    with open(f'{runs}/results.md', 'w') as f:
      f.write(text)
    print(text)
  with open(f'{runs}/commands_{args.phase}.sh', 'w') as f:
    f.write('\n'.join(commands) + '\n')


def table(results: dict) -> str:
  rows = ['| run | xsim err en->es cos / margin | xsim err es->en cos / margin | mining F1 '
          'margin (P / R) | mining F1 cosine (P / R) | zero-shot genre acc. en / es | '
          'train s |', '|' + '---|' * 7]
  for name, r in results.items():
    x, m = r['xsim'], r['mining']
    err = lambda d: f"{x['absolute'][d]['error_rate']:.3f} / {x['ratio'][d]['error_rate']:.3f}"
    f1 = lambda k: f"{m[k]['f1']:.3f} ({m[k]['precision']:.2f} / {m[k]['recall']:.2f})"
    rows.append(f"| {name} | {err('a_to_b')} | {err('b_to_a')} | {f1('margin (ratio)')} | "
                f"{f1('cosine')} | {r['zero_shot']['en']:.3f} / {r['zero_shot']['es']:.3f} | "
                f"{r['train_seconds']} |")
  first = next(iter(results.values()))
  rows.append(f"\nxsim over {first['xsim']['pairs']} test verse pairs; mining sentences "
              f"(en, es) test {first['mining']['cosine']['sentences']}, gold "
              f"{first['mining']['cosine']['gold']}; majority genre share "
              f"{json.dumps(first['majority'])}")
  return '\n'.join(rows) + '\n'


if __name__ == '__main__':
  main()
