"""The `mt` and `translate` jobs: supervised translation with an encoder-decoder.

  python -m plm.main --config=configs/mass.py:tiny --config.job=mt \
      --config.init_from=/tmp/mass_tiny/checkpoints --workdir=/tmp/mass_mt
  python -m plm.main --config=configs/mass.py:tiny --config.job=translate \
      --config.decode.input=en.txt --config.decode.output=es.txt --workdir=/tmp/mass_mt

`mt` fine-tunes mt.source -> mt.target on aligned pairs (the Bible's verses, or
data.parallel_dir files; mt.train_pairs > 0 keeps a seed-fixed sample of that
many: low-resource MT) through the one loop, from scratch, from a seq2seq run
(MASS) or from an encoder_lm run (XLM: plm.models.seq2seq.init_from_encoder_lm),
then beam-searches the test sources (plm/decode/outputs.py over plm/decode/seq2seq.py; the
decode.* fields) and scores BLEU and chrF beside copying the source and a word-by-word
dictionary (plm/evaluate/generation.py). `translate` decodes decode.input line by line with
the run in --workdir (plm/decode/files.py; the vocabulary its config.json records).

mt.unsupervised=True trains without pairs instead (unsupervised MT, Lample et al.
2018 / XLM; `unsupervised_parts`): sentences of both languages from disjoint
chapters, denoising ('dae') and on-the-fly back-translation ('bt') heads. The
held-out table ('mt' head on the test pairs) and the BLEU/chrF report are the
supervised ones. Start it from a MASS or XLM run (config.init_from), as the
papers do: from scratch back-translation has nothing to bootstrap from.
"""
import functools
import os

import numpy as np

from plm import checkpoint, models, objectives, run, train
from plm import meta as meta_lib
from plm import workdir as workdir_lib
from plm.data import mixing, parallel, sentences, text
from plm.data.rows import Rows
from plm.decode import files, outputs
from plm.errors import UserError
from plm.evaluate import generation
from plm.models import seq2seq
from plm.objectives import base, translation, unsupervised_mt


def sample(rows: Rows, n: int, seed: int) -> Rows:
  """A seed-fixed sample of n rows (all when n is 0 or at least the row count)."""
  if not n or n >= len(rows):
    return rows
  keep = np.sort(np.random.default_rng([seed, 1]).permutation(len(rows))[:n])
  return Rows(rows.take(keep), info=dict(rows.info, sampled=n))


def test_pairs(config, tokenizer) -> list[tuple[list[int], str, str]]:
  """(source ids, source text, reference) of the test split, those that fit the rows."""
  mc = config.mt
  pairs = [(s, t) for s, t in parallel.load_pairs(config.data, mc.source, mc.target, 'test')
           if s and t]
  ids = tokenizer.encode([s for s, _ in pairs])
  tgt = tokenizer.encode([t for _, t in pairs])
  out = [(i, s, t) for i, j, (s, t) in zip(ids, tgt, pairs)
         if len(i) + 2 <= mc.src_len and len(j) + 2 <= mc.tgt_len]
  n = config.decode.max_test_examples
  return out[:n] if n else out


def init_map_for(config):
  """How config.init_from's params become this model's: by name (a seq2seq run) or
  by plm.models.seq2seq.init_from_encoder_lm (an encoder_lm run: XLM)."""
  if not config.init_from:
    return None
  _, _, meta = checkpoint.saved_params(config.init_from)
  name = meta.get('model', {}).get('name')
  if name == 'encoder_lm':
    return seq2seq.init_from_encoder_lm
  if name != 'seq2seq':
    raise UserError(f'config.init_from={config.init_from!r} holds a {name!r} model; mt starts '
                    "from a 'seq2seq' (MASS) or an 'encoder_lm' (XLM) run")
  return None


def unsupervised_parts(config, tokenizer) -> tuple[mixing.MixedDataset, base.Objective]:
  """mt.unsupervised: the training rows and objective of unsupervised MT (Lample et al.
  2018, XLM): sentences of mt.source and mt.target from disjoint chapters of the train
  split (plm.data.sentences.disjoint_sentence_rows), half the rows of each language, one
  row length max(mt.src_len, mt.tgt_len); heads 'dae' and 'bt'
  (plm/objectives/unsupervised_mt.py)."""
  mc = config.mt
  src_lang, tgt_lang = outputs.mt_languages(config)
  if mc.train_pairs:
    raise UserError(f'mt.train_pairs={mc.train_pairs} samples parallel pairs, but '
                    'mt.unsupervised=True trains on monolingual sentences only; set '
                    'mt.train_pairs=0')
  if not config.model.num_languages:
    raise UserError('mt.unsupervised=True needs language embeddings (the decoder is told '
                    'which language to write): set model.num_languages=-1')
  mono = sentences.disjoint_sentence_rows(config.data, tokenizer, 'train',
                                          (mc.source, mc.target), max(mc.src_len, mc.tgt_len))
  rows = mixing.MixedDataset(mono, {mc.source: 0.5, mc.target: 0.5}, (mc.source, mc.target))
  seen = ', '.join(f"{lang} {r.info['sentences']} sentences of {r.info['units']} chapters (left "
                   f"out whole: {r.info['too_long']} longer than {r.seq_len} tokens, "
                   f"{r.info['empty']} empty)" for lang, r in mono.items())
  print(f'mt (unsupervised {mc.source}<->{mc.target}, no pairs): disjoint chapters, {seen}; '
        f'half the rows each; fingerprint {rows.fingerprint}; vocabulary '
        f'{tokenizer.fingerprint}', flush=True)
  special = objectives.special_ids(tokenizer)
  vocab = tokenizer.vocab_size
  objective = unsupervised_mt.make(
      lang_ids=(src_lang, tgt_lang), bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
      pad_id=tokenizer.pad_id, banned_ids=(tokenizer.pad_id, tokenizer.bos_id,
                                           tokenizer.mask_id),
      prior_logp=base.unigram_logp(rows.token_counts(vocab), special),
      mt_prior_logp=base.unigram_logp(mono[mc.target].token_counts(vocab), special))
  base.loss_weights(objective, config.objective.get('loss_weights'))  # unknown heads fail now
  return rows, objective


def make_task(config, tokenizer, workdir: str) -> train.Task:
  mc = config.mt
  outputs.mt_languages(config)  # both named and distinct, before any data is read
  make = functools.cache(lambda split: sentences.translation_rows(
      config.data, tokenizer, split, mc.source, mc.target, mc.src_len, mc.tgt_len))
  if mc.get('unsupervised', False):  # monolingual rows, 'dae' + 'bt'; held-out stays pairs
    rows, objective = unsupervised_parts(config, tokenizer)
  else:
    rows = sample(make('train'), mc.train_pairs, config.seed)
    print(f'mt: {len(rows)} training pairs {mc.source}->{mc.target} ({rows.info}), fingerprint '
          f'{rows.fingerprint}; vocabulary {tokenizer.fingerprint}', flush=True)
    a = rows.arrays
    target = a['tgt_tokens'][:, 1:][a['tgt_segment_ids'][:, 1:] > 0]
    counts = np.bincount(target, minlength=tokenizer.vocab_size)
    objective = translation.objective(
        prior_logp=base.unigram_logp(counts, objectives.special_ids(tokenizer)))
  model = models.build(config.model, tokenizer.vocab_size)
  pair = f'{mc.source}-{mc.target}'

  def report(params, table):
    del table
    test = test_pairs(config, tokenizer)
    hyps = outputs.translate_ids(config, model, tokenizer, params, [i for i, _, _ in test])
    sources, refs = [s for _, s, _ in test], [t for _, _, t in test]
    train_text = [(s, t) for s, t in parallel.load_pairs(config.data, mc.source, mc.target,
                                                         'train') if s and t]
    if mc.train_pairs and mc.train_pairs < len(train_text):  # the dictionary sees what mt saw
      keep = np.random.default_rng([config.seed, 2]).permutation(len(train_text))
      train_text = [train_text[i] for i in keep[:mc.train_pairs]]
    result = dict(generation.with_baselines(hyps, sources, refs,
                                            generation.word_dictionary(train_text)),
                  examples=len(test))
    path = os.path.join(workdir, f'test_hypotheses.{mc.target}.txt')
    text.write_lines(path, hyps)
    print(f'\nmt results ({pair}, test split, {len(test)} sentences; hypotheses in {path}):\n'
          '| system | BLEU | chrF |\n|---|---|---|\n' + '\n'.join(
              f"| {k} | {result[k]['bleu']:.2f} | {result[k]['chrf']:.2f} |"
              for k in ('model', 'copy_source', 'word_dictionary')), flush=True)
    for s, h, r in list(zip(sources, hyps, refs))[:3]:
      print(f'  source: {s}\n  output: {h}\n  target: {r}', flush=True)
    return dict(translation=result, hypotheses=path)

  return train.Task('mt', model, config.model, objective, rows, lambda split: {pair: make(split)},
                    report=report, init_map=init_map_for(config),
                    meta=meta_lib.of_tokenizer(tokenizer))


def mt_job(config, workdir: str) -> dict:
  config = run.finetune_config(run.resolve(config))
  if config.model.name != 'seq2seq':
    raise UserError(f"job=mt trains an encoder-decoder: set model.name='seq2seq' (it is "
                    f'{config.model.name!r}); configs/mass.py does')
  workdir = workdir_lib.workdir_path(workdir)
  tokenizer = workdir_lib.load_tokenizer(config, workdir)
  return train.train_and_evaluate(config, workdir, make_task(config, tokenizer, workdir))


def translate_job(config, workdir: str) -> list[str]:
  """Translates decode.input line by line into decode.output with the run in `workdir`."""
  if not config.decode.input:
    raise UserError('job=translate needs --config.decode.input=<UTF-8 file, one sentence a '
                    'line> and --config.decode.output=<file to write>')
  return files.decode_file(config, workdir, 'translate', outputs.translate_limit,
                           lambda loaded, ids: outputs.translate_ids(
                               loaded.config, loaded.model, loaded.tokenizer, loaded.params, ids))
