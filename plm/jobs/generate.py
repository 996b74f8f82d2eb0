"""The `generate` job: UNILM seq2seq fine-tuning (KJV -> WEB by default) and beam search.

  python -m plm.main --config=configs/unilm.py:tiny --config.job=generate \
      --config.init_from=/tmp/u/checkpoints --config.data.vocab_path=/tmp/u/vocab/spm.model \
      --workdir=/tmp/u_gen

Fine-tunes through the one loop (plm/objectives/seq2seq_finetune.py), then
decodes the test sources (plm/unilm_decode.py) and scores BLEU against the
references, beside the BLEU of copying the source.
"""
import functools
import math

import numpy as np
import sacrebleu

from plm import models, objectives, run, train, unilm_decode
from plm.data import labelled
from plm.objectives import base, seq2seq_finetune

HEAD = 'seq2seq'


def decode_test(config, model, tokenizer, params, pairs=None) -> dict:
  """Beam-search the test sources; BLEU against the references (and of copying the source).

  `pairs`: the test split's (source ids, reference) from labelled.pair_set, if already read.
  """
  fc, tok = config.finetune, tokenizer
  if pairs is None:
    _, pairs = labelled.pair_set(tok, 'test', fc, config.data.tfds_dir)
  if fc.max_test_examples:
    pairs = pairs[:fc.max_test_examples]
  width = max(len(src) for src, _ in pairs) + 2
  decoder = unilm_decode.make_decoder(
      model, mask_id=tok.mask_id, eos_id=tok.eos_id, pad_id=tok.pad_id,
      batch_size=fc.decode_batch_size, prompt_width=width,
      max_len=min(fc.seq_len, width + fc.max_target_len), beam_size=fc.beam_size,
      length_penalty=fc.length_penalty, no_repeat_ngram=fc.no_repeat_ngram,
      cached=fc.decode_cache)
  hyps = []
  for start in range(0, len(pairs), fc.decode_batch_size):
    chunk = [src for src, _ in pairs[start:start + fc.decode_batch_size]]
    chunk += [chunk[-1]] * (fc.decode_batch_size - len(chunk))  # one shape: one compile
    prompt, valid = unilm_decode.left_pad(chunk, width, bos_id=tok.bos_id, eos_id=tok.eos_id,
                                          pad_id=tok.pad_id)
    out = np.asarray(decoder(params, prompt, valid))
    hyps += [tok.decode(unilm_decode.strip(row, tok.eos_id)) for row in out]
  hyps = hyps[:len(pairs)]
  refs = [ref for _, ref in pairs]
  sources = [tok.decode(src) for src, _ in pairs]
  return dict(bleu=sacrebleu.corpus_bleu(hyps, [refs]).score,
              copy_bleu=sacrebleu.corpus_bleu(sources, [refs]).score,
              examples=len(pairs), samples=[dict(source=s, hypothesis=h, reference=r)
                                            for s, h, r in list(zip(sources, hyps, refs))[:5]])


def make_task(config, tokenizer) -> train.Task:
  fc = config.finetune
  if config.model.num_segments < 2:
    raise ValueError(f'generate needs model.num_segments >= 2 (source/target token types), got '
                     f'{config.model.num_segments}; use configs/unilm.py')
  rows, _ = labelled.pair_set(tokenizer, 'train', fc, config.data.tfds_dir)
  print(f'generate: {len(rows)} training pairs of {fc.seq_len} tokens, fingerprint '
        f'{rows.fingerprint}; vocabulary {tokenizer.fingerprint}', flush=True)
  num_predictions = math.ceil(fc.target_mask_rate * (fc.seq_len - 3)) + 1  # every target fits
  special = objectives.special_ids(tokenizer)
  fn = seq2seq_finetune.make(mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                             special_ids=special, num_predictions=num_predictions,
                             target_mask_rate=fc.target_mask_rate)
  a = rows.arrays
  counts = np.bincount(a['tokens'][(a['token_types'] == 1) & (a['valid'] == 1)],
                       minlength=tokenizer.vocab_size)
  objective = base.token_objective(HEAD, fn, prior_logp=base.unigram_logp(counts, special))
  model = models.build(config.model, tokenizer.vocab_size)
  pair = f'{fc.source}->{fc.target}'

  sets = functools.cache(lambda split: labelled.pair_set(tokenizer, split, fc,
                                                        config.data.tfds_dir))

  def report(params, table):
    d = decode_test(config, model, tokenizer, params, sets('test')[1])
    m = table[pair][HEAD]
    print('\ngenerate results (test split):\n'
          '| pair | masked-target accuracy | unigram | BLEU | copy-source BLEU | decoded |\n'
          '|---|---|---|---|---|---|\n'
          f"| {pair} | {m['accuracy']:.3f} | {m['unigram_accuracy']:.3f} | {d['bleu']:.2f} | "
          f"{d['copy_bleu']:.2f} | {d['examples']} |", flush=True)
    for sample in d['samples'][:3]:
      print(f"  source: {sample['source']}\n  output: {sample['hypothesis']}\n"
            f"  target: {sample['reference']}", flush=True)
    return dict(decode=d)

  heldout = lambda split: {pair: sets(split)[0]}  # test pairs read once, for both uses
  return train.Task('generate', model, config.model, objective, rows, heldout, report=report)


def generate_job(config, workdir: str) -> dict:
  config = run.finetune_config(run.resolve(config))
  tokenizer = run.load_tokenizer(config, run.workdir_path(workdir))
  return train.train_and_evaluate(config, workdir, make_task(config, tokenizer), tokenizer)
