"""plm: BERT-family pretrained language models on one JAX/Flax backbone."""
from plm.errors import MissingFileError, UserError

__all__ = ['MissingFileError', 'UserError', 'load']


def load(workdir: str, config=None):
  """(config, tokenizer, model, params, step) of the trained run in `workdir`.

  Imported on use, so `import plm` stays light. See plm/workdir.py.
  """
  from plm import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  return workdir_lib.load(workdir, config)
