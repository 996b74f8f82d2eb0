"""The `classify` job: a pre-trained model to Bible verse genres or the user's TSV files,
zero-shot across languages.

  python -m plm.main --config=configs/xlm.py:tiny --config.job=classify \
      --config.init_from=/tmp/xlm_tiny/checkpoints --workdir=/tmp/xlm_zeroshot

  # the user's own task: `text \t label` (or `text_a \t text_b \t label`) lines
  python -m plm.main --config=configs/hf.py:/path/to/hf_model --config.job=classify \
      --config.init_from=runs/minilm/checkpoints --config.finetune.train_file=train.tsv \
      --config.finetune.test_files=en=test.en.tsv,de=test.de.tsv --workdir=runs/minilm_cls

Trains on `finetune.train_language`'s labelled verses (or finetune.train_file) and tests on each of
`finetune.test_languages` (zero-shot transfer when they differ), through the one
loop: checkpoints, resume, TensorBoard, results.json. Two models:
  - the encoder families (BERT, XLM, UNILM) with finetune.freeze_encoder=False:
    the whole encoder fine-tuned under BERT's pooler head (EncoderClassifier);
  - LASER always, and any model with finetune.freeze_encoder=True: an MLP on its
    sentence vectors (SentenceClassifier; embed.layer, embed.pooling,
    finetune.classifier_hidden). Frozen, only the MLP trains: LASER's zero-shot
    protocol, the same for XLM and LASER. LASER unfrozen also fine-tunes its
    BiLSTM, without dropout (sentence vectors are computed deterministically).
"""
import functools

import numpy as np

from plm import checkpoint, models, run, train
from plm import meta as meta_lib
from plm import workdir as workdir_lib
from plm.data import bible_tasks, labelled, tsv
from plm.errors import UserError
from plm.models import sentence_classifier
from plm.objectives import classify

# Models fine-tuned whole under BERT's pooler head unless finetune.freeze_encoder.
ENCODER_FAMILY = ('encoder', 'encoder_lm', 'classifier', 'ernie2')
# Pre-training heads' fields a classifier does not have (ERNIE 2.0's per-task heads).
PRETRAINING_ONLY_FIELDS = ('name', 'task_heads')


def model_config(config, num_classes: int):
  """The pre-trained run's model fields under a classifier head."""
  mc = models.config('classifier')
  mc.update({k: v for k, v in config.model.items() if k not in PRETRAINING_ONLY_FIELDS})
  mc.num_classes = num_classes
  return mc


def sentence_model_config(config, num_classes: int):
  """The pre-trained run's model (config.model) under an MLP on its sentence vectors."""
  mc = models.config('sentence_classifier')
  mc.sentence_model = config.model.copy_and_resolve_references()
  mc.num_languages = config.model.get('num_languages', 0)
  mc.num_classes, mc.head_hidden = num_classes, config.finetune.classifier_hidden
  mc.dropout = config.model.get('dropout', mc.dropout)  # as the pooler head's
  mc.layer, mc.pooling = config.embed.layer, config.embed.pooling
  return mc


def uses_sentence_vectors(config) -> bool:
  """An MLP on sentence vectors (frozen, or LASER/seq2seq), not BERT's fine-tuning head."""
  return config.finetune.freeze_encoder or config.model.name not in ENCODER_FAMILY


class _Data:
  """The task's examples: Bible verse genres, or the user's TSV files (finetune.train_file)."""

  def __init__(self, config, tokenizer, lang_id):
    fc = config.finetune
    self.user = bool(fc.train_file)
    self.pairs = self.token_types = False
    if not self.user:
      self.classes = tuple(bible_tasks.GENRES)
      self.make = lambda lang, split: labelled.genre_set(tokenizer, lang, lang_id(lang), split,
                                                         fc, config.data.tfds_dir)
      self.test_languages = tuple(fc.test_languages)
      return
    texts, labels = tsv.read(fc.train_file)
    fields, self.classes = len(texts[0]) + 1, tuple(sorted(set(labels)))
    if len(self.classes) < 2:
      raise UserError(f'{fc.train_file} has one label ({self.classes[0]!r}); a classifier needs '
                      'at least two')
    files = tsv.parse_files(fc.test_files)
    if not files:
      raise UserError('finetune.test_files is empty: name the test files as language=path, e.g. '
                      'finetune.test_files=en=test.en.tsv,de=test.de.tsv')
    for path in files.values():  # a bad test file stops the run now, not after training
      tsv.label_ids(path, tsv.read(path, fields)[1], self.classes)
    # Sentence pairs get BERT's token types where the model has them.
    self.pairs = fields == 3
    self.token_types = types = self.pairs and config.model.get('num_segments', 0) > 0
    def make(lang, split):
      if split != 'test':
        raise UserError(f'finetune.train_file tasks have no {split} split; set '
                        'finetune.eval_every=0 (the test files are evaluated at the end)')
      return labelled.tsv_set(tokenizer, files[lang], self.classes, fields, lang_id(lang), fc,
                              types)
    self.make = make
    self.train = lambda: labelled.tsv_set(tokenizer, fc.train_file, self.classes, fields,
                                          lang_id(fc.train_language), fc, types)
    self.test_languages = tuple(files)


def make_task(config, tokenizer, workdir: str = '') -> train.Task:
  """The classify task; with `workdir`, its label names go to {workdir}/labels.json
  (what plm.load(workdir).classify answers with)."""
  fc, languages = config.finetune, tuple(config.data.languages)
  num_languages = config.model.get('num_languages', 0)

  def lang_id(lang):
    if num_languages and lang not in languages:
      raise UserError(f'finetune language {lang!r} is not in data.languages {languages} (the '
                      'language embeddings); use one of them')
    return languages.index(lang) if num_languages else 0

  data = _Data(config, tokenizer, lang_id)
  num_classes = len(data.classes)
  if workdir:
    workdir_lib.write_labels(workdir, data.classes, data.pairs, data.token_types)
  if uses_sentence_vectors(config):
    mc = sentence_model_config(config, num_classes)
    init_map = None
    if config.init_from:  # a checkpoint of another model is refused before any data is read
      _, _, meta = checkpoint.saved_params(config.init_from)
      init_map = sentence_classifier.init_map(meta.get('model', {}), mc, config.init_from)
    elif fc.freeze_encoder:
      print('classify: no config.init_from: the frozen sentence model keeps its random '
            'initialization (a random-features baseline)', flush=True)
    frozen = (sentence_classifier.PART,) if fc.freeze_encoder else ()
  else:
    mc, init_map, frozen = model_config(config, num_classes), None, ()

  rows = data.train() if data.user else data.make(fc.train_language, 'train')
  what = f'examples of {fc.train_file} ({num_classes} labels)' if data.user else 'verses'
  print(f'classify: {len(rows)} training {what} of {fc.seq_len} tokens, fingerprint '
        f'{rows.fingerprint}; vocabulary {tokenizer.fingerprint}; '
        + (f'an MLP on the {"frozen " if frozen else ""}{config.model.name} sentence vectors'
           if mc.name == 'sentence_classifier' else 'the whole encoder fine-tuned'), flush=True)
  counts = np.bincount(rows.arrays['labels'], minlength=num_classes)
  heldout = functools.cache(lambda split: {lang: data.make(lang, split)
                                           for lang in data.test_languages})

  def report(params, table):
    del params
    # The baseline to beat: always answering the test split's own most frequent genre.
    shares = {}
    for name, ds in heldout('test').items():
      shares[name] = float(np.bincount(ds.arrays['labels']).max() / len(ds))
    lines = ['| test language | accuracy | test majority share | examples |', '|---|---|---|---|']
    lines += [f"| {k} | {table[k]['classify']['accuracy']:.3f} | {shares[k]:.3f} | "
              f"{table[k]['classify']['predictions']} |" for k in table]
    print('\nclassify results (test split):\n' + '\n'.join(lines), flush=True)
    return dict(majority_share=shares, classes=list(data.classes))

  return train.Task('classify', models.build(mc, tokenizer.vocab_size), mc,
                    classify.make(counts), rows, heldout, report=report, init_map=init_map,
                    frozen=frozen, meta=meta_lib.of_tokenizer(tokenizer))


def classify_job(config, workdir: str) -> dict:
  config = run.finetune_config(run.resolve(config))
  workdir = workdir_lib.workdir_path(workdir)
  tokenizer = workdir_lib.load_tokenizer(config, workdir)
  task = make_task(config, tokenizer, workdir)
  config.model = task.model_config  # config.json describes the model this run trains
  return train.train_and_evaluate(config, workdir, task)
