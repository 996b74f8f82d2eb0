"""plm: BERT-family pretrained language models on one JAX/Flax backbone."""
from plm.errors import MissingFileError, UserError

__all__ = ['MissingFileError', 'UserError', 'load']


def load(workdir: str, config=None):
  """The trained run in `workdir` (any family or job) as a `plm.workdir.Loaded`.

  Its config, tokenizer (None for TransE), model, params and step, and the methods its
  kind serves, which run it as its jobs do: `embed(lines, language=None)` -> float32
  [n, hidden]; `generate(lines)` (a UNILM generate run), `translate(lines)` (an mt run),
  `classify(lines)` -> label names (a classify run), `entity_vectors()` (TransE);
  `methods()` lists them. Imported on use, so `import plm` stays light.
  """
  from plm import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  return workdir_lib.load(workdir, config)
