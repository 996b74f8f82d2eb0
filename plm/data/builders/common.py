"""What the user-corpus builders share: file fingerprints, UTF-8 lines, reading back."""
from collections.abc import Iterator, Sequence
import hashlib
import os

import tensorflow_datasets as tfds


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
    raise FileNotFoundError(f'{path} is not a directory; it must hold {what}')
  return path


def utf8_lines(path: str) -> Iterator[tuple[int, str]]:
  """(line number, line without its newline); a byte that is not UTF-8 is one clear error."""
  with open(path, 'rb') as f:
    for number, raw in enumerate(f, start=1):
      try:
        yield number, raw.decode('utf-8-sig' if number == 1 else 'utf-8').rstrip('\r\n')
      except UnicodeDecodeError as e:
        raise ValueError(f'{path}, line {number}: not UTF-8 ({e.reason} at byte {e.start}); '
                         're-encode the file as UTF-8, e.g. `iconv -f LATIN1 -t UTF-8`') from None


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
