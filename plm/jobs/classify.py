"""The `classify` job: fine-tune a pre-trained encoder to Bible verse genres.

  python -m plm.main --config=configs/xlm.py:tiny --config.job=classify \
      --config.init_from=/tmp/xlm_tiny/checkpoints \
      --config.data.vocab_path=/tmp/xlm_tiny/vocab/spm.model --workdir=/tmp/xlm_zeroshot

Trains on `finetune.train_language`'s labelled verses and tests on each of
`finetune.test_languages` (XLM's zero-shot transfer when they differ), through
the one loop: checkpoints, resume, TensorBoard, results.json.
"""
import functools

import numpy as np

from plm import models, run, train
from plm.data import bible_tasks, labelled
from plm.objectives import classify


def model_config(config, num_classes: int):
  """The pre-trained run's model fields under a classifier head."""
  mc = models.config('classifier')
  mc.update({k: v for k, v in config.model.items() if k != 'name'})
  mc.num_classes = num_classes
  return mc


def make_task(config, tokenizer) -> train.Task:
  fc, languages = config.finetune, tuple(config.data.languages)

  def lang_id(lang):
    if config.model.num_languages and lang not in languages:
      raise ValueError(f'finetune language {lang!r} is not in data.languages {languages} (the '
                       'language embeddings); use one of them')
    return languages.index(lang) if config.model.num_languages else 0

  make = lambda lang, split: labelled.genre_set(tokenizer, lang, lang_id(lang), split, fc,
                                                config.data.tfds_dir)
  rows = make(fc.train_language, 'train')
  print(f'classify: {len(rows)} training verses of {fc.seq_len} tokens, fingerprint '
        f'{rows.fingerprint}; vocabulary {tokenizer.fingerprint}', flush=True)
  counts = np.bincount(rows.arrays['labels'], minlength=len(bible_tasks.GENRES))
  mc = model_config(config, len(bible_tasks.GENRES))
  heldout = functools.cache(lambda split: {lang: make(lang, split) for lang in fc.test_languages})

  def report(params, table):
    del params
    # The baseline to beat: always answering the test split's own most frequent genre.
    shares = {}
    for name, ds in heldout('test').items():
      shares[name] = float(np.bincount(ds.arrays['labels']).max() / len(ds))
    lines = ['| test language | accuracy | test majority share | verses |', '|---|---|---|---|']
    lines += [f"| {k} | {table[k]['classify']['accuracy']:.3f} | {shares[k]:.3f} | "
              f"{table[k]['classify']['predictions']} |" for k in table]
    print('\nclassify results (test split):\n' + '\n'.join(lines), flush=True)
    return dict(majority_share=shares)

  return train.Task('classify', models.build(mc, tokenizer.vocab_size), mc,
                    classify.make(counts), rows, heldout, report=report)


def classify_job(config, workdir: str) -> dict:
  config = run.finetune_config(run.resolve(config))
  tokenizer = run.load_tokenizer(config, run.workdir_path(workdir))
  task = make_task(config, tokenizer)
  config.model = task.model_config  # config.json describes the model this run trains
  return train.train_and_evaluate(config, workdir, task, tokenizer)
