"""A UTF-8 file decoded line by line with a trained run (decode.input -> decode.output).

One path for job=generate (UNILM) and job=translate (encoder-decoder): the run in
--workdir is loaded with the vocabulary its config.json records, every line is
checked against the job's length limit, the non-empty lines are decoded in
batches of one shape, and one output a line is written in order (an empty line
gives an empty line).
"""
from typing import Callable

from plm import workdir as workdir_lib
from plm.data import text
from plm.errors import UserError


def decode_file(config, workdir: str, job: str, limit: Callable, decode_ids: Callable
                ) -> list[str]:
  """decode.input decoded by the run in `workdir` into decode.output; returns the outputs.

  limit(run config) -> (most tokens a line may have with bos/eos, what to do about a
  longer one); decode_ids(plm.workdir.Loaded, [ids of each non-empty line]) -> their outputs.
  """
  dc = config.decode
  if not dc.output:
    raise UserError(f'job={job} with decode.input needs decode.output: name the file the '
                    'outputs go to (--config.decode.output=out.txt)')
  loaded = workdir_lib.load(workdir, config)
  max_ids, too_long = limit(loaded.config)
  out, empty = text.map_file(
      dc.input, dc.output, 'decode.input: a UTF-8 text file, one source per line',
      loaded.tokenizer.encode, max_ids, too_long, lambda ids: decode_ids(loaded, ids))
  print(f'{job}: decoded {len(out) - empty} lines of {dc.input} into {dc.output}; {empty} '
        'empty lines left empty', flush=True)
  return out
