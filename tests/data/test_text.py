"""plm.data.text: the one UTF-8 line reader (missing file, bad byte, BOM, line ends)."""
import pytest

from plm.data import text


def test_lines_are_numbered_without_their_line_ends(tmp_path):
  path = tmp_path / 'a.txt'
  path.write_bytes(b'one\r\n  two  \n\nlast')  # CRLF, inner spaces kept, no final newline
  assert list(text.utf8_lines(str(path))) == [(1, 'one'), (2, '  two  '), (3, ''), (4, 'last')]
  assert text.read_lines(str(path)) == ['one', '  two  ', '', 'last']
  (tmp_path / 'empty.txt').write_bytes(b'')
  assert text.read_lines(str(tmp_path / 'empty.txt')) == []


def test_a_missing_file_names_the_path_and_what_it_must_be(tmp_path):
  path = str(tmp_path / 'nowhere' / 'x.txt')
  with pytest.raises(FileNotFoundError) as e:
    list(text.utf8_lines(path, 'embed.input: a UTF-8 text file'))
  assert str(e.value) == f'{path} does not exist; it must be embed.input: a UTF-8 text file'
  with pytest.raises(FileNotFoundError, match=f'{tmp_path}/y.txt does not exist'):
    text.read_lines(str(tmp_path / 'y.txt'))


def test_a_latin1_byte_names_file_and_line(tmp_path):
  path = tmp_path / 'latin1.txt'
  path.write_bytes('ok\n\nfine\n'.encode() + 'año\n'.encode('latin-1') + b'after\n')
  lines = text.utf8_lines(str(path))
  # The lines before the bad one are read (a stream, not one big decode).
  assert [next(lines) for _ in range(3)] == [(1, 'ok'), (2, ''), (3, 'fine')]
  with pytest.raises(ValueError) as e:
    next(lines)
  message = str(e.value)
  assert message.startswith(f'{path}, line 4: not UTF-8')
  assert 'byte 1' in message and 're-encode the file as UTF-8' in message
  with pytest.raises(ValueError, match=f'{path}, line 4: not UTF-8'):
    text.read_lines(str(path))


def test_a_bom_is_dropped_from_the_first_line_only(tmp_path):
  path = tmp_path / 'bom.txt'
  path.write_bytes(b'\xef\xbb\xbfa b\r\nc\n')
  assert text.read_lines(str(path)) == ['a b', 'c']
  assert not text.read_lines(str(path))[0].startswith('\ufeff')
  # A BOM anywhere else is text (U+FEFF), not a file marker: kept.
  path.write_bytes(b'a\n\xef\xbb\xbfb\n')
  assert text.read_lines(str(path)) == ['a', '\ufeffb']
  path.write_bytes('señal\n'.encode('utf-8'))  # plain UTF-8 beyond ASCII reads back
  assert text.read_lines(str(path)) == ['señal']


def test_map_file_keeps_order_and_empty_lines_and_refuses_long_lines(tmp_path):
  src, dst = tmp_path / 'in.txt', tmp_path / 'sub' / 'out.txt'
  src.write_text('a b\n\nc d e\n', encoding='utf-8')
  encode = lambda lines: [line.split() for line in lines]
  seen = []

  def fn(ids):
    seen.append(ids)
    return ['|'.join(row).upper() for row in ids]

  out, empty = text.map_file(str(src), str(dst), 'a file', encode, 5, 'fix it', fn)
  assert (out, empty) == (['A|B', '', 'C|D|E'], 1)
  assert seen == [[['a', 'b'], ['c', 'd', 'e']]]  # one call, the non-empty lines only
  assert dst.read_text(encoding='utf-8') == 'A|B\n\nC|D|E\n'
  with pytest.raises(ValueError, match=r'in.txt, line 3: 5 tokens with bos/eos, fix it'):
    text.map_file(str(src), str(dst), 'a file', encode, 4, 'fix it', fn)
