"""What the user-corpus builders share: file fingerprints, UTF-8 lines, reading back."""
from collections.abc import Sequence
import hashlib
import os

import tensorflow_datasets as tfds

from plm.data.text import utf8_lines  # pylint: disable=unused-import  # the builders read through it
from plm.errors import MissingFileError


def fingerprint(paths: Sequence[str], root: str) -> str:
  """8 hex digits over each file's path under `root`, size and modification time."""
  h = hashlib.sha256()
  for path in sorted(paths):
    st = os.stat(path)
    h.update(f'{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
  return h.hexdigest()[:8]


def check_dir(path: str, what: str) -> str:
  """The absolute directory, or one error saying what it must hold."""
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(path):
    raise MissingFileError(f'{path} is not a directory; it must hold {what}')
  return path


def data_sources(builder_cls, config, data_dir: str) -> dict:
  """{split: random-access source}; builds `config` into `data_dir` on first use (array_record).

  A split with no examples is not built (TFDS refuses to write one), so it is
  absent here.
  """
  return tfds.data_source(builder_cls.name, split=None, data_dir=os.path.expanduser(data_dir),
                          builder_kwargs={'config': config, 'file_format': 'array_record'})


def in_order(source) -> list[dict]:
  """All records of a data source in corpus order (array_record keeps the writer's hashed one)."""
  return sorted(source.__getitems__(range(len(source))), key=lambda r: int(r['index']))
