"""The one UTF-8 line reader every text input goes through, and its writer.

A missing file and a byte that is not UTF-8 are each one clear error naming the
file (and line) and the fix. A byte-order mark on the first line is dropped.
"""
from collections.abc import Callable, Iterator
import os

from plm.errors import MissingFileError, UserError


def utf8_lines(path: str, what: str = 'a UTF-8 text file') -> Iterator[tuple[int, str]]:
  """(line number, line without its newline); `what` says what the file must be."""
  if not os.path.isfile(path):
    raise MissingFileError(f'{path} does not exist; it must be {what}')
  with open(path, 'rb') as f:
    for number, raw in enumerate(f, start=1):
      try:
        yield number, raw.decode('utf-8-sig' if number == 1 else 'utf-8').rstrip('\r\n')
      except UnicodeDecodeError as e:
        raise UserError(f'{path}, line {number}: not UTF-8 ({e.reason} at byte {e.start}); '
                        're-encode the file as UTF-8, e.g. `iconv -f LATIN1 -t UTF-8`') from None


def read_lines(path: str, what: str = 'a UTF-8 text file') -> list[str]:
  """Every line of `path`, without line ends, in order."""
  return [line for _, line in utf8_lines(path, what)]


def map_lines(lines: list[str], fn: Callable[[list[int]], list[str]]) -> list[str]:
  """fn on the indices of the non-empty lines (one output each, in order); an empty line
  gives an empty output. What line-by-line jobs (translate, generate) write."""
  todo = [i for i, line in enumerate(lines) if line.strip()]
  out = [''] * len(lines)
  for i, o in zip(todo, fn(todo)):
    out[i] = o
  return out


def map_file(src: str, dst: str, what: str, encode: Callable[[list[str]], list[list[int]]],
             max_ids: int, too_long: str, fn: Callable[[list[list[int]]], list[str]]
             ) -> tuple[list[str], int]:
  """Line-by-line jobs (translate, generate): `src`'s lines encoded, each checked against
  `max_ids` tokens with bos/eos (`too_long` names the fix), `fn` on the non-empty lines'
  ids, the outputs written to `dst` in order. Returns (outputs, empty lines)."""
  lines = read_lines(src, what)
  ids = encode(lines)
  for number, row in enumerate(ids, start=1):
    if len(row) + 2 > max_ids:
      raise UserError(f'{src}, line {number}: {len(row) + 2} tokens with bos/eos, {too_long}')
  out = map_lines(lines, lambda todo: fn([ids[i] for i in todo]))
  write_lines(dst, out)
  return out, sum(not line.strip() for line in lines)


def write_lines(path: str, lines: list[str]) -> None:
  """`lines` to `path` as UTF-8, one a line (folders made as needed)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(''.join(line + '\n' for line in lines))
