"""The `laser` job: LASER training (Artetxe & Schwenk, 2019), the BiLSTM sentence encoder
learning through translating every source into the target languages.

  python -m plm.main --config=configs/laser.py --workdir=runs/laser
  python -m plm.main --config=configs/laser.py:tiny --workdir=/tmp/laser_tiny

Rows: every direction of `laser.directions` ('src-tgt' language codes of
data.languages), each the aligned Bible verses (or data.parallel_dir files) of the
split, concatenated and shuffled by the loop. The paper trains into English and
Spanish; the shipped corpus gives en (KJV), en_web (World English Bible) and es
(Reina-Valera 1909), so the default directions are en->es, es->en, en_web->es and
en_web->en. Held out: the same directions on validation/test (the 'mt' head's
loss and accuracy), and cross-lingual retrieval of test verses (P@1 = 1 - xsim
error) every train.retrieval_every steps and at the end.
"""
import numpy as np

from plm import checkpoint, models, objectives, run, train
from plm import meta as meta_lib
from plm import workdir as workdir_lib
from plm.data import rows as rows_lib
from plm.data import sentences
from plm.errors import UserError
from plm.evaluate import bible_retrieval
from plm.objectives import base, translation


def directions(config) -> list[tuple[str, str]]:
  """laser.directions as (source, target) codes of data.languages, checked."""
  known, out = tuple(config.data.languages), []
  for entry in config.laser.directions:
    parts = tuple(entry.split('-'))
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
      raise UserError(f"laser.directions entry {entry!r}: write a direction as 'en-es' "
                      '(source-target, two different languages)')
    if unknown := [l for l in parts if l not in known]:
      raise UserError(f'laser.directions entry {entry!r}: unknown language(s) {unknown}; '
                      f'add them to data.languages={list(known)} or fix the direction')
    out.append(parts)
  if not out:
    raise UserError("laser.directions is empty: name at least one 'src-tgt' direction")
  return out


def check_init_from(config) -> None:
  """init_from must hold a LASER model (named before any array is read)."""
  if config.init_from:
    name = checkpoint.saved_params(config.init_from)[2].get('model', {}).get('name')
    if name != 'laser':
      raise UserError(f'config.init_from={config.init_from!r} holds a {name!r} model, not a '
                      "LASER model; start LASER from a 'laser' run or from scratch")


def make_task(config, tokenizer) -> train.Task:
  """LASER's rows (all directions), the translation objective and the retrieval evaluator."""
  lc = config.laser
  pairs = directions(config)
  check_init_from(config)

  def split_rows(split):
    return {f'{s}-{t}': sentences.translation_rows(config.data, tokenizer, split, s, t,
                                                   lc.src_len, lc.tgt_len) for s, t in pairs}

  parts = split_rows('train')
  info = {name: r.info for name, r in parts.items()}
  rows = rows_lib.concatenate(list(parts.values()), info=dict(directions=info))
  print(f'laser: {len(rows)} training pairs over {len(parts)} directions ('
        + ', '.join(f"{n} {len(r)} (left out {r.info['too_long']} too long, "
                    f"{r.info['empty']} empty)" for n, r in parts.items())
        + f'), fingerprint {rows.fingerprint}; vocabulary {tokenizer.fingerprint}', flush=True)
  a = rows.arrays
  targets = a['tgt_tokens'][:, 1:][a['tgt_segment_ids'][:, 1:] > 0]
  objective = translation.objective(prior_logp=base.unigram_logp(
      np.bincount(targets, minlength=tokenizer.vocab_size), objectives.special_ids(tokenizer)))
  model = models.build(config.model, tokenizer.vocab_size)
  retrieval = bible_retrieval.Evaluator(config, tokenizer, model)
  evaluators = (('retrieval', config.train.retrieval_every, retrieval, bible_retrieval.log),)
  return train.Task('laser', model, config.model, objective, rows, split_rows, evaluators,
                    meta=meta_lib.of_tokenizer(tokenizer))


def train_job(config, workdir: str) -> dict:
  """Trains LASER (resuming), then prints and writes the test results; on a finished run
  it only re-evaluates."""
  config = run.resolve(config)
  tokenizer = workdir_lib.load_tokenizer(config, workdir_lib.workdir_path(workdir))
  return train.train_and_evaluate(config, workdir, make_task(config, tokenizer))
