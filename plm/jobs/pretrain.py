"""The `train` and `evaluate` jobs: pre-training by `objective.name` on the configured corpus.

  python -m plm.main --config=configs/xlm.py --workdir=runs/xlm
  python -m plm.main --config=configs/xlm.py --config.job=evaluate --workdir=runs/xlm
"""
from plm import models, objectives, run, train
from plm import meta as meta_lib
from plm import workdir as workdir_lib
from plm.data import mixing, prepared
from plm.errors import UserError
from plm.evaluate import bible_retrieval


def heldout_sets(config, tokenizer, split, rows=None):
  """Rows per language, and TLM rows per direction ('en-es') when the run trains TLM;
  from the prepared corpus when `rows` is one."""
  if isinstance(rows, prepared.PreparedDataset):
    sets = {lang: rows.heldout_rows(split, lang) for lang in config.data.languages}
  else:
    sets = {lang: mixing.monolingual_rows(config.data, tokenizer, split, lang)
            for lang in config.data.languages}
  return {**sets, **mixing.heldout_tlm_sets(config.data, tokenizer, split)}


def make_task(config, tokenizer) -> train.Task:
  """Pre-training rows (MLM/CLM/UNILM, plus TLM when data.tlm_share > 0), model, objective."""
  if config.model.name == 'laser':
    raise UserError("model.name='laser' trains through translation: use config.job=laser "
                    '(configs/laser.py sets it; rerunning it on a finished run re-evaluates)')
  if config.data.seq_len > config.model.max_len:
    raise UserError(f'data.seq_len={config.data.seq_len} exceeds model.max_len='
                    f'{config.model.max_len}; raise model.max_len or lower data.seq_len')
  if config.data.prepared_dir:  # streamed from array_record shards by grain
    rows = prepared.PreparedDataset(config.data, tokenizer)
  else:  # MLM (+ TLM) rows, sampled, in memory
    rows = mixing.make_train_dataset(config.data, tokenizer)
  counts = rows.token_counts(tokenizer.vocab_size)
  print(f'data: {len(rows)} training rows of {config.data.seq_len} tokens, fingerprint '
        f'{rows.fingerprint}, order '
        f'{rows.order_fingerprint(config.train.batch_size, seed=config.seed)}; vocabulary '
        f'{tokenizer.fingerprint} ({tokenizer.vocab_size} pieces); streams: {rows.summary}',
        flush=True)
  model = models.build(config.model, tokenizer.vocab_size)
  evaluators = ()
  if config.train.retrieval_every:  # Bible verse retrieval P@1 on validation, and on test
    evaluators = (('retrieval', config.train.retrieval_every,
                   bible_retrieval.Evaluator(config, tokenizer, model), bible_retrieval.log),)
  return train.Task('pretrain', model, config.model, objectives.build(config, tokenizer, counts),
                    rows, lambda split: heldout_sets(config, tokenizer, split, rows), evaluators,
                    meta=meta_lib.of_tokenizer(tokenizer))


def train_job(config, workdir: str) -> dict:
  """The `train` job: trains (resuming), then prints and writes the test results."""
  config = run.resolve(config)
  tokenizer = workdir_lib.load_tokenizer(config, workdir_lib.workdir_path(workdir))
  return train.train_and_evaluate(config, workdir, make_task(config, tokenizer))


def evaluate_job(config, workdir: str) -> dict:
  """The `evaluate` job: the test results of the newest checkpoint in `workdir`."""
  config = run.resolve(config)
  tokenizer = workdir_lib.load_tokenizer(config, workdir_lib.workdir_path(workdir))
  return train.evaluate_checkpoint(config, workdir, make_task(config, tokenizer))
