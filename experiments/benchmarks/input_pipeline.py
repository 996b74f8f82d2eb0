r"""Streaming input: a prepared corpus read by grain, at 1x, 4x and 16x corpus size.

The corpus is real text, made large: the shipped English (KJV) and Spanish (Reina-Valera
1909) Bibles' training chapters, repeated with the chapters shuffled anew in every
repetition (seed = repetition), written as a textdir corpus (data.corpus=textdir), half
of the bytes per language; validation and test are the Bibles' own held-out chapters.
Each size is prepared once (`--config.job=prepare`, timed) into its own directory; then a
fresh subprocess per size opens it as a training run does (plm.data.prepared
.PreparedDataset with configs/xlm.py's defaults: seq_len 128, language_alpha 0.7) and
measures
  start-up   opening the prepared corpus until the first batch is in hand,
  rows/s     batches of 8 rows (BERT-Base's batch in train_throughput.py) pulled from the
             grain iterator as fast as it gives them, for --seconds,
  peak RSS   the subprocess's peak resident memory (VmHWM) from opening the corpus on: the
             peak is reset after the imports (Linux clear_refs), whose RSS is shown beside
             it, as is the whole process's ru_maxrss (imports' transient peak included),
and, at 1x only, the same start-up and peak RSS of the in-memory path
(plm.data.mixing.make_train_dataset: read, tokenize and pack at every start).
The training step's need is the BERT-Base step time measured by train_throughput.py
(experiments/benchmarks/README.md: 6401 ms per step of 8 rows on this CPU) unless
--step_ms gives another.

  nice python experiments/benchmarks/input_pipeline.py --base_mb=64   # 64 MB, 256 MB, 1 GB
  nice python experiments/benchmarks/input_pipeline.py --base_mb=4    # a quick check
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

BERT_BASE_STEP_MS = 6400.9  # plm, BERT-Base, batch 8, fp32, this CPU (README, train_throughput)
BATCH = 8


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--base_mb', type=float, default=64, help='1x corpus size, MB of text')
  p.add_argument('--sizes', default='1,4,16', help='multiples of --base_mb')
  p.add_argument('--out', default='/tmp/plm_input_pipeline', help='corpora, prepared dirs')
  p.add_argument('--seconds', type=float, default=20, help='time spent pulling batches')
  p.add_argument('--step_ms', type=float, default=BERT_BASE_STEP_MS,
                 help='the training step time the pipeline must feed (batch of 8 rows)')
  p.add_argument('--measure', default='', help=argparse.SUPPRESS)  # internal: one size
  p.add_argument('--in_memory', action='store_true', help=argparse.SUPPRESS)
  return p.parse_args(argv)


def rss_mb(field: str = 'VmRSS') -> float:
  """This process's resident memory (VmRSS) or its peak (VmHWM), MB."""
  with open('/proc/self/status', encoding='ascii') as f:
    kb = next(int(line.split()[1]) for line in f if line.startswith(field + ':'))
  return kb / 1024


def reset_peak() -> None:
  """Starts VmHWM afresh (Linux: clear_refs 5), so the peak is the corpus's, not imports'."""
  with open('/proc/self/clear_refs', 'w', encoding='ascii') as f:
    f.write('5')


def config_for(out: str, text_dir: str, prepared_dir: str = ''):
  from configs import xlm  # pylint: disable=g-import-not-at-top
  config = xlm.get_config()
  config.data.vocab_path = os.path.join(out, 'vocab', 'spm.model')
  config.data.corpus = 'textdir'
  config.data.text_dir = text_dir
  config.data.prepared_dir = prepared_dir
  return config


def write_corpus(config, text_dir: str, target_bytes: float) -> int:
  """The Bibles' train chapters repeated, chapters shuffled per repetition; bytes written."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from plm.data import pipeline  # pylint: disable=g-import-not-at-top
  bible = config.copy_and_resolve_references()
  bible.data.corpus = 'bible'
  os.makedirs(text_dir, exist_ok=True)
  total = 0
  for lang in config.data.languages:
    for split in ('validation', 'test'):
      docs = pipeline.load_texts(bible.data, split, languages=(lang,))[lang]
      with open(os.path.join(text_dir, f'{lang}.{split}.txt'), 'w', encoding='utf-8') as f:
        f.write(''.join('\n'.join(doc) + '\n\n' for doc in docs))
    chapters = [('\n'.join(doc) + '\n\n').encode() for doc in
                pipeline.load_texts(bible.data, 'train', languages=(lang,))[lang]]
    written, repetition, want = 0, 0, target_bytes / len(config.data.languages)
    with open(os.path.join(text_dir, f'{lang}.train.txt'), 'wb') as f:
      while written < want:  # the last repetition stops at the chapter that reaches `want`
        for i in np.random.default_rng(repetition).permutation(len(chapters)):
          f.write(chapters[i])
          written += len(chapters[i])
          if written >= want:
            break
        repetition += 1
    total += written
  return total


def measure(args) -> dict:
  """One size, in this (fresh) process: start-up, rows/s and peak RSS."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from plm.data import mixing, prepared  # pylint: disable=g-import-not-at-top
  from plm.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  meta = json.load(open(os.path.join(args.measure, 'info.json'), encoding='utf-8'))
  config = config_for(args.out, meta['text_dir'], args.measure)
  tokenizer = tokenizer_lib.load(config.data.vocab_path)
  after_imports = rss_mb()
  reset_peak()
  start = time.perf_counter()
  if args.in_memory:
    rows = mixing.make_train_dataset(config.data, tokenizer)
    first = rows.batch(0, BATCH, seed=0)
    startup = time.perf_counter() - start
    return dict(startup_s=startup, rows=len(rows), after_imports_mb=after_imports,
                peak_rss_mb=rss_mb('VmHWM'),
                process_peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
  rows = prepared.PreparedDataset(config.data, tokenizer)
  iterator = rows.iterator(BATCH, seed=0)
  first = next(iterator)
  startup = time.perf_counter() - start
  n, tokens, start = 0, 0, time.perf_counter()
  while time.perf_counter() - start < args.seconds:
    batch = next(iterator)
    n += len(batch['tokens'])
    tokens += int(np.sum(batch['segment_ids'] > 0))
  elapsed = time.perf_counter() - start
  assert first['tokens'].shape == (BATCH, config.data.seq_len)
  return dict(startup_s=startup, rows=len(rows), rows_per_s=n / elapsed,
              tokens_per_s=tokens / elapsed, after_imports_mb=after_imports,
              peak_rss_mb=rss_mb('VmHWM'),
              process_peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_measure(args, prepared_dir: str, in_memory: bool = False) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), f'--measure={prepared_dir}',
         f'--out={args.out}', f'--seconds={args.seconds}'] + (['--in_memory'] * in_memory)
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                        env=dict(os.environ, JAX_PLATFORMS='cpu'))
  if proc.returncode:
    raise RuntimeError(f'{cmd} failed:\n{proc.stdout}\n{proc.stderr}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare_size(args, k: int) -> dict:
  """Corpus and prepared directory of size k x base (reused when already made)."""
  text_dir = os.path.join(args.out, f'corpus_{k}x')
  prepared_dir = os.path.join(args.out, f'prepared_{k}x')
  info_path = os.path.join(prepared_dir, 'info.json')
  if os.path.exists(info_path):
    return json.load(open(info_path, encoding='utf-8'))
  config = config_for(args.out, text_dir)
  text_bytes = write_corpus(config, text_dir, k * args.base_mb * 1e6)
  cmd = [sys.executable, '-m', 'plm.main', '--config=configs/xlm.py', '--config.job=prepare',
         '--config.data.corpus=textdir', f'--config.data.text_dir={text_dir}',
         f'--config.data.vocab_path={config.data.vocab_path}',
         f'--config.data.prepared_dir={prepared_dir}', f'--workdir={args.out}/run']
  start = time.perf_counter()
  subprocess.run(cmd, cwd=ROOT, check=True, env=dict(os.environ, JAX_PLATFORMS='cpu'),
                 stdout=subprocess.DEVNULL)
  seconds = time.perf_counter() - start
  disk = sum(os.path.getsize(os.path.join(prepared_dir, f)) for f in os.listdir(prepared_dir))
  meta = json.load(open(os.path.join(prepared_dir, 'prepared.json'), encoding='utf-8'))
  info = dict(k=k, text_dir=text_dir, text_mb=text_bytes / 1e6, prepare_s=seconds,
              disk_mb=disk / 1e6, train_rows=sum(v['rows'] for v in meta['splits']['train'].values()),
              train_tokens=sum(v['tokens'] for v in meta['splits']['train'].values()))
  with open(info_path, 'w', encoding='utf-8') as f:
    json.dump(info, f)
  return info


def main(argv=None):
  args = parse_args(argv)
  if args.measure:
    print(json.dumps(measure(args)))
    return
  from plm import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  os.makedirs(args.out, exist_ok=True)
  bible = config_for(args.out, '')
  bible.data.corpus = 'bible'
  workdir_lib.load_tokenizer(bible, args.out)  # configs/xlm.py's 8000 pieces, trained on the Bibles
  sizes = [int(k) for k in args.sizes.split(',')]
  need = BATCH / (args.step_ms / 1000)
  print(f'machine: {platform.machine()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; '
        f'base {args.base_mb:g} MB of text; BERT-Base step {args.step_ms:g} ms for {BATCH} '
        f'rows = {need:.2f} rows/s needed', flush=True)
  rows = []
  for k in sizes:
    info = prepare_size(args, k)
    print(f'{k}x: {info["text_mb"]:.0f} MB text prepared in {info["prepare_s"]:.0f} s',
          flush=True)
    rows.append((info, run_measure(args, os.path.join(args.out, f'prepared_{k}x'))))
  memory = run_measure(args, os.path.join(args.out, f'prepared_{sizes[0]}x'), in_memory=True)
  print(f'\nload now {os.getloadavg()[0]:.2f}\n')
  print('| corpus | text MB | train rows | prepare s | disk MB | start-up s | peak RSS MB | '
        'RSS after imports MB | process ru_maxrss MB | rows/s | x step need |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  for info, m in rows:
    print(f'| {info["k"]}x | {info["text_mb"]:,.0f} | {info["train_rows"]:,} | '
          f'{info["prepare_s"]:,.0f} | {info["disk_mb"]:,.0f} | {m["startup_s"]:.2f} | '
          f'{m["peak_rss_mb"]:,.0f} | {m["after_imports_mb"]:,.0f} | '
          f'{m["process_peak_mb"]:,.0f} | {m["rows_per_s"]:,.0f} | '
          f'{m["rows_per_s"] / need:,.0f}x |')
  print(f'| {sizes[0]}x in memory | {rows[0][0]["text_mb"]:,.0f} | {memory["rows"]:,} | - | - | '
        f'{memory["startup_s"]:.2f} | {memory["peak_rss_mb"]:,.0f} | '
        f'{memory["after_imports_mb"]:,.0f} | {memory["process_peak_mb"]:,.0f} | - | - |')
  peaks = [m['peak_rss_mb'] for _, m in rows]
  starts = [m['startup_s'] for _, m in rows]
  print(f'\npeak RSS spread {max(peaks) / min(peaks) - 1:.1%} (target <= 10%); start-up '
        f'{min(starts):.2f}-{max(starts):.2f} s; slowest pipeline '
        f'{min(m["rows_per_s"] for _, m in rows) / need:,.0f}x the step need (target >= 10x)')


if __name__ == '__main__':
  main()
