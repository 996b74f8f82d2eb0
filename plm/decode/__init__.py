"""Generation: one search (search.py) over each model family's step function.

  search.py   greedy and beam search over step_fn(cache, tokens, position)
  lm.py       a left-to-right EncoderLM's steps (CLM)
  unilm.py    UNILM's steps: [MASK] after the prefix (job=generate)
  seq2seq.py  the encoder-decoder's steps (MASS, XLM-initialised; job=mt, translate)
  outputs.py  source ids to output text: UNILM generation, translation (jobs, plm.load)
  files.py    a UTF-8 file decoded line by line with a trained run (decode.input)
"""
