"""The `embed` job: one vector per input line from a trained run.

  python -m plm.main --config=configs/xlm.py --config.job=embed \
      --config.embed.input=sentences.txt --config.embed.output=vectors.npy --workdir=runs/xlm

Reads UTF-8 text, one sentence per line, and writes a float32 array
[lines, hidden] in the same order (plm/evaluate/embedding.py: layer, pooling).
"""
import os

import numpy as np

from plm import workdir as workdir_lib
from plm.data import text
from plm.evaluate import embedding


def embed_file(config, workdir: str) -> np.ndarray:
  """Runs the job; returns (and writes to embed.output) the vectors."""
  ec = config.embed
  loaded = workdir_lib.load(workdir, config)
  lines = text.read_lines(ec.input, 'embed.input: a UTF-8 text file with one sentence per line')
  vectors = embedding.embed_lines(loaded.config, loaded.tokenizer, loaded.model, loaded.params,
                                  lines, ec.language, ec.input)
  os.makedirs(os.path.dirname(os.path.abspath(ec.output)), exist_ok=True)
  np.save(ec.output, vectors)
  empty = sum(not line.strip() for line in lines)
  print(f'embedded {len(lines)} lines of {ec.input} into {ec.output} '
        f'({vectors.shape[1]} dims, {ec.pooling} pooling of layer {ec.layer}); {empty} empty '
        'lines embedded as empty sentences ([bos] [eos])', flush=True)
  return vectors
