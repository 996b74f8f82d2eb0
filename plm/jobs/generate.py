"""The `generate` job: UNILM seq2seq fine-tuning (KJV -> WEB by default) and beam search.

  python -m plm.main --config=configs/unilm.py:tiny --config.job=generate \
      --config.init_from=/tmp/u/checkpoints \
      --workdir=/tmp/u_gen

Fine-tunes through the one loop (plm/objectives/seq2seq_finetune.py), then
decodes the test sources (plm/decode/outputs.py over plm/decode/unilm.py; the decode.*
fields) and scores BLEU and chrF against the references, beside copying the source and a
word-by-word dictionary (plm/evaluate/generation.py); the hypotheses go to
{workdir}/test_hypotheses.txt.

With decode.input set it trains nothing: it decodes that UTF-8 file, one source a
line, with the fine-tuned run in --workdir, into decode.output (one output a line, in
order; an empty line gives an empty line; plm/decode/files.py):

  python -m plm.main --config=configs/unilm.py:tiny --config.job=generate \
      --config.decode.input=kjv.txt --config.decode.output=web.txt --workdir=/tmp/u_gen
"""
import functools
import math
import os

import numpy as np

from plm import models, objectives, run, train
from plm import meta as meta_lib
from plm import workdir as workdir_lib
from plm.data import bible_tasks, labelled, text
from plm.decode import files, outputs
from plm.errors import UserError
from plm.evaluate import generation
from plm.objectives import base, seq2seq_finetune

HEAD = 'seq2seq'


@functools.lru_cache(maxsize=4)
def word_dictionary(source: str, target: str, data_dir: str) -> dict[str, str]:
  """The word-by-word baseline's dictionary (plm/evaluate/generation.py) from the training
  pairs' text: the bar a translation (en -> es) has to clear, where copying the source scores
  near zero. Built once per process (seconds: every word pair of 28k verse pairs)."""
  return generation.word_dictionary(bible_tasks.parallel_verses((source, target), 'train',
                                                                data_dir))


def decode_test(config, model, tokenizer, params, pairs=None) -> dict:
  """Beam-search the test sources; BLEU and chrF against the references (and of copying
  the source), with sacrebleu's signatures and every hypothesis.

  `pairs`: the test split's (source ids, reference) from labelled.pair_set, if already read.
  """
  fc, tok = config.finetune, tokenizer
  if pairs is None:
    _, pairs = labelled.pair_set(tok, 'test', fc, config.data.tfds_dir)
  if config.decode.max_test_examples:
    pairs = pairs[:config.decode.max_test_examples]
  hyps = outputs.generate_ids(config, model, tok, params, [src for src, _ in pairs])
  refs = [ref for _, ref in pairs]
  sources = [tok.decode(src) for src, _ in pairs]
  s = generation.with_baselines(hyps, sources, refs, word_dictionary(fc.source, fc.target,
                                                                     config.data.tfds_dir))
  model_s, copy_s, words_s = s['model'], s['copy_source'], s['word_dictionary']
  return dict(bleu=model_s['bleu'], chrf=model_s['chrf'],
              copy_bleu=copy_s['bleu'], copy_chrf=copy_s['chrf'],
              dictionary_bleu=words_s['bleu'], dictionary_chrf=words_s['chrf'],
              signature=model_s['signature'], examples=len(pairs), hypotheses=hyps,
              samples=[dict(source=s, hypothesis=h, reference=r)
                       for s, h, r in list(zip(sources, hyps, refs))[:5]])


def make_task(config, tokenizer, workdir: str = '') -> train.Task:
  fc = config.finetune
  if config.model.num_segments < 2:
    raise UserError(f'generate needs model.num_segments >= 2 (source/target token types), got '
                    f'{config.model.num_segments}; use configs/unilm.py')
  rows, _ = labelled.pair_set(tokenizer, 'train', fc, config.data.tfds_dir)
  print(f'generate: {len(rows)} training pairs of {fc.seq_len} tokens, fingerprint '
        f'{rows.fingerprint}; vocabulary {tokenizer.fingerprint}', flush=True)
  special = objectives.special_ids(tokenizer)
  if labelled.pseudo_target(fc):  # every target token predicted, as many slots as fit a row
    fn = seq2seq_finetune.make_pseudo(mask_id=tokenizer.mask_id,
                                      vocab_size=tokenizer.vocab_size,
                                      num_predictions=(fc.seq_len - 2) // 2)
  else:
    num_predictions = math.ceil(fc.target_mask_rate * (fc.seq_len - 3)) + 1  # every target fits
    fn = seq2seq_finetune.make(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                               special_ids=special, num_predictions=num_predictions,
                               target_mask_rate=fc.target_mask_rate)
  a = rows.arrays
  real_target = (a['token_types'] == 1) & (a['valid'] == 1) & (a.get('pseudo', 0) == 0)
  counts = np.bincount(a['tokens'][real_target], minlength=tokenizer.vocab_size)
  objective = base.token_objective(HEAD, fn, prior_logp=base.unigram_logp(counts, special))
  model = models.build(config.model, tokenizer.vocab_size)
  pair = f'{fc.source}->{fc.target}'

  sets = functools.cache(lambda split: labelled.pair_set(tokenizer, split, fc,
                                                        config.data.tfds_dir))

  def report(params, table):
    d = decode_test(config, model, tokenizer, params, sets('test')[1])
    hyps = d.pop('hypotheses')
    if workdir:
      d['hypotheses'] = os.path.join(workdir, 'test_hypotheses.txt')
      text.write_lines(d['hypotheses'], hyps)
    m = table[pair][HEAD]
    print('\ngenerate results (test split):\n'
          '| pair | masked-target accuracy | unigram | BLEU | chrF | copy-source BLEU / chrF | '
          'word-by-word BLEU / chrF | decoded |\n|---|---|---|---|---|---|---|---|\n'
          f"| {pair} | {m['accuracy']:.3f} | {m['unigram_accuracy']:.3f} | {d['bleu']:.2f} | "
          f"{d['chrf']:.1f} | {d['copy_bleu']:.2f} / {d['copy_chrf']:.1f} | "
          f"{d['dictionary_bleu']:.2f} / {d['dictionary_chrf']:.1f} | {d['examples']} |\n"
          f"sacrebleu: {d['signature']['bleu']}", flush=True)
    for sample in d['samples'][:3]:
      print(f"  source: {sample['source']}\n  output: {sample['hypothesis']}\n"
            f"  target: {sample['reference']}", flush=True)
    return dict(decode=d)

  heldout = lambda split: {pair: sets(split)[0]}  # test pairs read once, for both uses
  return train.Task('generate', model, config.model, objective, rows, heldout, report=report,
                    meta=meta_lib.of_tokenizer(tokenizer))


def generate_job(config, workdir: str):
  """Fine-tunes and scores the test split, or (decode.input set) decodes a file."""
  config = run.finetune_config(run.resolve(config))
  if config.decode.input:
    return files.decode_file(config, workdir, 'generate', outputs.generate_limit,
                             lambda loaded, ids: outputs.generate_ids(
                                 loaded.config, loaded.model, loaded.tokenizer, loaded.params,
                                 ids))
  workdir = workdir_lib.workdir_path(workdir)
  tokenizer = workdir_lib.load_tokenizer(config, workdir)
  return train.train_and_evaluate(config, workdir, make_task(config, tokenizer, workdir))
