"""decode.input's shared path (plm/decode/files.py): batches of one shape, and its checks."""
import pytest

from configs import mass
from plm.decode import files, outputs


def test_in_batches_keeps_order_and_fills_the_last_batch():
  calls = []

  def fn(chunk):
    calls.append(list(chunk))
    return [x * 10 for x in chunk]

  assert outputs.in_batches(fn, [1, 2, 3, 4, 5], 2) == [10, 20, 30, 40, 50]
  assert calls == [[1, 2], [3, 4], [5, 5]]  # every call has batch_size items
  assert outputs.in_batches(fn, [], 2) == []


def test_decode_input_without_output_names_the_field(tmp_path):
  config = mass.get_config('tiny')
  config.decode.input = str(tmp_path / 'in.txt')
  with pytest.raises(ValueError, match=r'job=translate with decode.input needs decode.output'):
    files.decode_file(config, str(tmp_path), 'translate', None, None)
