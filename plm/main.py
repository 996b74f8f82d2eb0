r"""plm's command line: parse flags, pick the job (config.job), run it.

  python -m plm.main --config=configs/xlm.py --workdir=runs/xlm
  python -m plm.main --config=configs/xlm.py:tiny --config.train.steps=100 --workdir=/tmp/x

Jobs (--config.job=...):
  train      pre-train by objective.name (default), then the held-out test table
  evaluate   the test table of the newest checkpoint in --workdir
  embed      one vector per line of embed.input, written to embed.output (.npy)
  retrieve   cross-lingual retrieval P@1 of held-out Bible verses
  vocab      build the sentencepiece vocabulary and print its fingerprint
  prepare    tokenize and pack the corpus once into data.prepared_dir (array_record shards)
  classify   fine-tune (init_from) to verse genres; zero-shot across languages
  generate   UNILM seq2seq fine-tuning and beam search, BLEU
  mt         encoder-decoder translation fine-tuning (MASS, XLM-initialised), BLEU/chrF
  translate  translate decode.input line by line into decode.output
  transe     TransE on a knowledge graph (kg.*), filtered link prediction, entity vectors
  laser      LASER: BiLSTM sentence encoder trained through translation (configs/laser.py)
  ernie2     ERNIE 2.0 continual multi-task pre-training (configs/ernie2.py)
  mine       margin-based bitext mining of mine.src against mine.tgt, TSV out
  ernie      ERNIE (THU): MLM + NSP + dEA pre-training with WordNet entities (configs/ernie.py)
  ernie_finetune  ERNIE/BERT fine-tuning: entity typing or relation classification
  convert    a transformers checkpoint (configs/hf.py:<dir>) into a plm run directory
  export     a plm encoder run as a transformers directory (export.output)
  distill    ERNIE-Tiny: a student learns from a trained teacher run (configs/tiny.py)
  compress   prune heads / FFN units and int8-quantize a trained run, then its test table

Every training run writes {workdir}/config.json and {workdir}/results.json
(train and the fine-tuning jobs); evaluate writes {workdir}/results_evaluate.json. A user error (bad path, config or data) ends
as one line on stderr (plm.UserError); --verbosity=1 shows the traceback behind it. Any
other exception is a bug and keeps its traceback.
"""
import difflib
import importlib
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from plm.errors import UserError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/xlm.py:tiny.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, summaries, vocab.')


# job -> (module, function); imported when the job runs, which keeps --help fast.
JOBS = {
    'train': ('plm.jobs.pretrain', 'train_job'),
    'evaluate': ('plm.jobs.pretrain', 'evaluate_job'),
    'embed': ('plm.jobs.embed', 'embed_file'),
    'mine': ('plm.jobs.mine', 'mine_files'),
    'laser': ('plm.jobs.laser', 'train_job'),
    'vocab': ('plm.jobs.vocab', 'build_vocab'),
    'prepare': ('plm.jobs.prepare', 'prepare_job'),
    'retrieve': ('plm.jobs.retrieve', 'retrieve'),
    'classify': ('plm.jobs.classify', 'classify_job'),
    'generate': ('plm.jobs.generate', 'generate_job'),
    'mt': ('plm.jobs.mt', 'mt_job'),
    'translate': ('plm.jobs.mt', 'translate_job'),
    'transe': ('plm.jobs.transe', 'transe_job'),
    'ernie': ('plm.jobs.ernie', 'ernie_job'),
    'ernie_finetune': ('plm.jobs.ernie', 'finetune_job'),
    'ernie2': ('plm.jobs.ernie2', 'train_job'),
    'convert': ('plm.jobs.convert', 'convert_job'),
    'export': ('plm.jobs.convert', 'export_job'),
    'distill': ('plm.jobs.distill', 'distill_job'),
    'compress': ('plm.jobs.compress', 'compress_job'),
}
# What a user can cause (a bad path, config value or file): one line, no traceback.
# Everything else is a bug (plm's, JAX's, numpy's) and keeps its traceback.
USER_ERRORS = (UserError, NotADirectoryError, PermissionError)


def close_matches(word, choices) -> str:
  near = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
  return f' Did you mean {" or ".join(near)}?' if near else ''


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  try:
    config = _CONFIG.value
    _ = config is not None and config.job  # a config file's FileNotFoundError surfaces here
  except OSError as e:
    sys.exit(f'error: {str(e).split("earlier failure to load: ")[-1]}')
  if config is None:
    sys.exit('error: --config is required, e.g. --config=configs/xlm.py (or configs/xlm.py:tiny);'
             ' python -m plm.main --help lists the jobs')
  if config.job not in JOBS:
    sys.exit(f"error: config.job='{config.job}' is unknown.{close_matches(config.job, JOBS)} "
             f'Jobs: {", ".join(JOBS)}')
  if _WORKDIR.value is None:
    sys.exit('error: --workdir is required (checkpoints, summaries and the vocabulary go there)')
  if not flags.FLAGS['verbosity'].present:  # orbax and TFDS are chatty at INFO
    logging.set_verbosity(logging.WARNING)
  logging.info('config:\n%s', config)
  module, function = JOBS[config.job]

  def job():
    from plm import distributed  # pylint: disable=g-import-not-at-top
    distributed.initialize(config.get('distributed'))  # before any JAX work; no-op for 1 process
    getattr(importlib.import_module(module), function)(config, _WORKDIR.value)

  run_reporting_user_errors(job, verbose=flags.FLAGS['verbosity'].present)


def run_reporting_user_errors(fn, verbose: bool = False):
  """fn(); a user's mistake (plm.UserError) exits as one line naming the fix, anything else
  (a bug) keeps its traceback. `verbose` (--verbosity given): every error keeps it."""
  try:
    return fn()
  except USER_ERRORS as e:
    if verbose:
      raise
    sys.exit(f'error: {e}\n(rerun with --verbosity=1 for the traceback)')


def parse_flags(argv):
  """absl flag parsing, with an unknown or mistyped config key as one clear line."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
    text = str(e.args[0] if e.args else e).replace('\\n', ' ').replace("\\'", "'")
    if 'Error whilst parsing config file' in text and 'Traceback' in text:
      # get_config itself refused (e.g. configs/hf.py:<dir> of an unsupported model): its
      # message, not ml_collections' traceback.
      last = text.strip().splitlines()[-1] if '\n' in text.strip() else text
      sys.exit(f'error: {last.split("Error: ", 1)[-1].strip()}')
    if text[:1] == text[-1:] == "'":  # a repr()'d KeyError message
      text = text[1:-1]
    reason = ' '.join(text.split()).rstrip('.?') + '.'
    overrides = [a.split('=')[0] for a in argv[1:] if a.startswith('--config.')]
    from plm import configlib  # pylint: disable=g-import-not-at-top (the config file loaded it)
    moved = [f'--config.{configlib.MOVED[o[len("--config."):]]} (was {o})' for o in overrides
             if o[len('--config.'):] in configlib.MOVED]
    if moved:
      sys.exit(f'error: config fields moved: use {", ".join(moved)}.')
    culprits = [o for o in overrides if f"'{o.rsplit('.', 1)[-1]}'" in reason or o in reason]
    overrides = culprits or overrides
    sys.exit(f'error: bad config override ({", ".join(overrides) or "--config"}): {reason} '
             'Fix the key or value; plm/configlib.py and the config file list every key.')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
