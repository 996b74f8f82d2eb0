"""The command line, in-process: --help lists the jobs; every user error is one line."""
import os
import subprocess
import sys

from absl import flags
import pytest

from plm import main, models
from plm.errors import MissingFileError, UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args) -> str:
  """The message main exits with (SystemExit), in this process."""
  flags.FLAGS.unparse_flags()
  cwd = os.getcwd()
  os.chdir(REPO)  # config paths are relative to the repository
  try:
    main.parse_flags(['plm.main', *args])
    main.main(['plm.main'])
  except SystemExit as e:
    return str(e.code)
  finally:
    os.chdir(cwd)
    flags.FLAGS.unparse_flags()
  raise AssertionError(f'main {args} did not exit')


def test_help_lists_every_job():
  out = subprocess.run([sys.executable, '-m', 'plm.main', '--help'], cwd=REPO,
                       capture_output=True, text=True, timeout=120).stdout  # absl exits 1
  for job in main.JOBS:
    assert f'\n  {job} ' in out, job


def test_missing_config_and_workdir():
  assert run_main().startswith('error: --config is required')
  assert run_main('--config=configs/xlm.py:tiny').startswith('error: --workdir is required')


def cli_error(*args) -> str:
  """stderr of a failing `python -m plm.main` (config overrides register flags once per
  process, so these run in a subprocess)."""
  proc = subprocess.run([sys.executable, '-m', 'plm.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc
  return proc.stderr.strip()


def test_unknown_job_and_key_name_the_fix(tmp_path):
  message = cli_error('--config=configs/xlm.py:tiny', '--config.job=trian', f'--workdir={tmp_path}')
  assert message.startswith("error: config.job='trian' is unknown. Did you mean train"), message
  message = cli_error('--config=configs/xlm.py:tiny', '--config.model.hiden=8',
                      f'--workdir={tmp_path}')
  assert message.startswith('error: bad config override (--config.model.hiden)'), message
  assert 'hidden' in message and len(message.splitlines()) == 1


def test_moved_field_names_its_new_place(tmp_path):
  message = cli_error('--config=configs/mass.py:tiny', '--config.job=translate',
                      '--config.mt.input=x.txt', f'--workdir={tmp_path}')
  assert message == ('error: config fields moved: use --config.decode.input (was '
                     '--config.mt.input).'), message
  message = cli_error('--config=configs/unilm.py:tiny', '--config.finetune.beam_size=3',
                      f'--workdir={tmp_path}')
  assert message.startswith('error: config fields moved: use --config.decode.beam_size'), message


def test_moved_fields_point_at_decode_fields_with_the_old_family_defaults():
  from configs import mass, unilm  # pylint: disable=g-import-not-at-top
  from plm import configlib  # pylint: disable=g-import-not-at-top
  base = configlib.base()
  from configs import tiny  # pylint: disable=g-import-not-at-top
  distill = tiny.get_config('tiny')

  def has(config, path):
    for key in path.split('.'):
      if key not in config:
        return False
      config = config[key]
    return True

  for old, new in configlib.MOVED.items():  # gone from every config; the new field is there
    assert not has(base, old) and not has(distill, old), old
    assert has(base, new) or has(distill, new), new
  search = lambda c: (c.decode.beam_size, c.decode.no_repeat_ngram, c.decode.max_target_len,
                      c.decode.max_test_examples)
  assert search(unilm.get_config()) == (5, 3, 96, 0)
  assert search(unilm.get_config('tiny')) == (5, 3, 40, 64)
  assert search(mass.get_config()) == (4, 0, 96, 0)
  assert search(mass.get_config('tiny')) == (4, 0, 64, 64)
  assert not {'beam_size', 'input', 'decode_batch_size'} & set(mass.get_config().mt)


def test_user_error_is_one_line_without_traceback(tmp_path):
  message = cli_error('--config=configs/xlm.py:tiny', '--config.data.corpus=textdir',
                      f'--config.data.text_dir={tmp_path}/none', f'--workdir={tmp_path}/run')
  assert 'Traceback' not in message
  first, hint = message.splitlines()[-2:]
  assert first.startswith(f'error: Missing text file {tmp_path}/none/en.train.txt'), message
  assert hint == '(rerun with --verbosity=1 for the traceback)'


def test_only_user_errors_lose_their_traceback():
  """A plm.UserError is one line; a ValueError or FileNotFoundError raised by a bug (plm's,
  JAX's or numpy's) propagates with its traceback instead of posing as a config mistake."""
  def raises(error):
    def fn():
      raise error
    return fn

  with pytest.raises(SystemExit) as e:
    main.run_reporting_user_errors(raises(UserError('model.size=x: use one of ...')))
  assert str(e.value.code) == ('error: model.size=x: use one of ...\n'
                               '(rerun with --verbosity=1 for the traceback)')
  with pytest.raises(SystemExit) as e:
    main.run_reporting_user_errors(raises(MissingFileError('no vocabulary at v')))
  assert str(e.value.code).startswith('error: no vocabulary at v\n')
  for bug in (ValueError('operands could not be broadcast'), FileNotFoundError('x'),
              FloatingPointError('y'), OSError('z')):
    with pytest.raises(type(bug)):
      main.run_reporting_user_errors(raises(bug))
  with pytest.raises(UserError):  # --verbosity: the traceback of a user error too
    main.run_reporting_user_errors(raises(UserError('u')), verbose=True)


def test_bad_transformers_directory_is_one_line(tmp_path):
  message = cli_error(f'--config=configs/hf.py:{tmp_path}/none', f'--workdir={tmp_path}/run')
  assert message == (f'error: {tmp_path}/none/config.json does not exist: point at a '
                     'transformers checkpoint directory (config.json and model.safetensors)')
  (tmp_path / 'config.json').write_text('{"model_type": "gpt2"}')
  message = cli_error(f'--config=configs/hf.py:{tmp_path}', f'--workdir={tmp_path}/run')
  assert message.startswith(f"error: {tmp_path}/config.json: model_type='gpt2' (architectures "
                            'None) is not supported; plm converts bert: '), message
  assert len(message.splitlines()) == 1


def test_model_fields_belong_to_the_model():
  mc = models.config('encoder_lm')
  with mc.unlocked():
    mc.hiden = 64
  with pytest.raises(ValueError, match=r'no field model.hiden \(did you mean model.hidden\?\)'):
    models.build(mc, 100)
  with pytest.raises(ValueError, match=r"model.name='encodr_lm' is unknown \(did you mean "
                                       r"'encoder_lm'\?\)"):
    models.config('encodr_lm')
  with pytest.raises(ValueError, match='at least 2 classes'):
    models.build(models.config('classifier'), 100)
  encoder = models.build(models.config('encoder'), 100)
  lm = models.build(models.config('encoder_lm'), 100)
  assert type(encoder).__name__ == 'Encoder' and lm.encoder == encoder
