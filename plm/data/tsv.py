"""A user's labelled TSV files: `text \t label` or `text_a \t text_b \t label` a line.

No header line; UTF-8; every line of every file of a task has the same number of
fields. The classes are the training file's labels (sorted); a test file's label
the training file never had is an error naming the file and line.
"""
import os

from plm.errors import MissingFileError, UserError

FIELDS = (2, 3)  # text, label | text_a, text_b, label


def read(path: str, fields: int | None = None) -> tuple[list[tuple[str, ...]], list[str]]:
  """(texts per line: 1 or 2 strings, label strings); `fields` = 2 or 3 (None: the first
  line's count, which must be 2 or 3)."""
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise MissingFileError(f'{path} does not exist: name a UTF-8 TSV file of '
                           r'"text \t label" (or "text_a \t text_b \t label") lines')
  texts, labels = [], []
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      parts = line.rstrip('\r\n').split('\t')
      if fields is None:
        fields = len(parts)
        if fields not in FIELDS:
          raise UserError(f'{path}:{number} has {fields} tab-separated fields; a task file has '
                          r'2 (text \t label) or 3 (text_a \t text_b \t label)')
      if len(parts) != fields:
        raise UserError(f'{path}:{number} has {len(parts)} tab-separated fields, expected '
                        f'{fields} like the training file (a tab inside a text, or an empty '
                        'line?)')
      if not parts[-1].strip():
        raise UserError(f'{path}:{number} has an empty label')
      texts.append(tuple(parts[:-1]))
      labels.append(parts[-1].strip())
  if not labels:
    raise UserError(f'{path} is empty: a task file needs at least one labelled line')
  return texts, labels


def label_ids(path: str, labels: list[str], classes: tuple[str, ...]) -> list[int]:
  """Each label's index in `classes`; an unknown one names its file and line."""
  index = {c: i for i, c in enumerate(classes)}
  for number, label in enumerate(labels, 1):
    if label not in index:
      raise UserError(f'{path}:{number} has the label {label!r}, which the training file does '
                      f'not have (its labels: {list(classes)})')
  return [index[label] for label in labels]


def parse_files(spec: str) -> dict[str, str]:
  """'en=test.en.tsv,de=test.de.tsv' -> {'en': ..., 'de': ...} (language=path pairs)."""
  out = {}
  for item in filter(None, (s.strip() for s in spec.split(','))):
    name, sep, path = item.partition('=')
    if not sep or not name or not path:
      raise UserError(f'finetune.test_files item {item!r} is not language=path; e.g. '
                      'finetune.test_files=en=test.en.tsv,de=test.de.tsv')
    if name in out:
      raise UserError(f'finetune.test_files names the language {name!r} twice')
    out[name] = path
  return out
