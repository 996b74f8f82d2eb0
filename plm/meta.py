"""What a checkpoint must match: the meta dict saved beside every state, and its checks.

A run's meta (plm/train.py `setup`) is the job's `Task.meta` (vocabulary
fingerprint and size), the model config, the task name, the frozen parameters
and the dataset's own `meta` (e.g. ERNIE 2.0's stage schedule). A resume must
match it field by field, except the fields that change how a model computes
(`models.COMPUTE_FIELDS`); a field a checkpoint lacks has its default
(`models.DEFAULT_WHEN_ABSENT`, and `DEFAULT_WHEN_ABSENT` below).
"""
import json

from absl import logging
from flax import traverse_util

from plm import models
from plm.data import tokenizer as tokenizer_lib
from plm.errors import UserError

# meta key -> (what the checkpoint has when it differs, the fix)
FIXES = {
    'vocab': ('was trained with vocabulary',
              'set data.vocab_path to the original vocabulary'),
    'vocab_size': ('was trained with vocabulary size',
                   'set data.vocab_path to the original vocabulary'),
    'model': ('holds another model', 'use the config it was trained with'),
    'task': ('was trained by another task', 'rerun the job that trained it'),
    'frozen': ('was trained with frozen parameters',
               'set finetune.freeze_encoder as the run had it'),
    'schedule': ('was trained with another stage schedule', 'a resumed run must continue the '
                 'same schedule: restore ernie2.stages as the run had them'),
    'task_ids': ('was trained with other ERNIE 2.0 task ids',
                 'restore ernie2.stages as the run had them'),
}
# Fields of the meta a checkpoint saved before they existed lacks: absent equals this.
DEFAULT_WHEN_ABSENT = {'frozen': []}
# Saved task names whose checkpoints hold imported parameters, not a run to resume.
IMPORTED = {'convert': 'parameters imported by job=convert'}
# In the meta but not a condition of a resume: data (a warning) and the saved position.
NOT_MATCHED = ('data', 'data_step')


def of_tokenizer(tokenizer) -> dict:
  """The `Task.meta` of a job that reads text: its vocabulary."""
  return dict(vocab=tokenizer.fingerprint, vocab_size=tokenizer.vocab_size)


def _as_json(value):
  """As the checkpoint saved it: tuples (ERNIE 2.0's task_heads) are lists."""
  return json.loads(json.dumps(value))


def _model(m: dict | None) -> dict:
  """A saved or current model config as compared: compute fields out, absent = default."""
  m = dict(m or {})
  for k, default in models.DEFAULT_WHEN_ABSENT.items():
    m.setdefault(k, default)
  return _as_json({k: v for k, v in m.items() if k not in models.COMPUTE_FIELDS})


def differences(saved: dict, current: dict) -> list[tuple[str, str, object, object]]:
  """(meta key, field, saved value, current value) of every field of `current` that the
  checkpoint's meta holds otherwise; model fields one by one."""
  out = []
  for key in sorted(set(current) - set(NOT_MATCHED)):
    if key == 'model':
      a, b = _model(saved.get('model')), _model(current['model'])
      out += [('model', f'model.{k}', a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
              if a.get(k) != b.get(k)]
      continue
    a = _as_json(saved.get(key, DEFAULT_WHEN_ABSENT.get(key)))
    b = _as_json(current[key])
    if a != b:
      out.append((key, key, a, b))
  return out


def check_meta(saved: dict, current: dict) -> None:
  """A checkpoint serves the run whose meta it equals, compute fields aside.

  Only the keys of `current` are matched: plm.load passes vocab and model alone; a
  run (with 'task') resumes, so the checkpoint must be a training run's. A changed
  data fingerprint is a warning: the run continues at the saved step on the new data.
  """
  if 'task' in current and saved.get('task') in IMPORTED:
    raise UserError(f"this --workdir holds {IMPORTED[saved['task']]}, not a training run to "
                    'resume; train in a new --workdir with config.init_from=<this '
                    'workdir>/checkpoints')
  if differ := differences(saved, current):
    lines = []
    for key, field, a, b in differ:
      what, fix = FIXES.get(key, (f'has another {key}', f'restore {key} as the run had it'))
      lines.append(f'the checkpoint {what}: {field} is {a!r} there, {b!r} in this run; {fix}')
    raise UserError('\n'.join(lines) + '\n(or start in a new --workdir)')
  if 'data' in current and saved.get('data') != current['data']:
    logging.warning('the training data changed since the checkpoint (fingerprint %s -> %s); '
                    'continuing at the saved step on the new data', saved.get('data'),
                    current['data'])


def check_init_from(config, saved: dict, current: dict) -> None:
  """config.init_from must hold a run of this vocabulary and of this model's shape fields
  (the ones its module declares: plm.models.shape_fields)."""
  if saved.get('vocab') != current['vocab']:
    raise UserError(f'config.init_from={config.init_from!r} was trained with vocabulary '
                    f"{saved.get('vocab')}, this run uses {current['vocab']}; set "
                    'data.vocab_path to the vocabulary of that run (its vocab/spm.model)')
  saved_model = saved.get('model', {})
  differ = [k for k in models.shape_fields(config.model.name)
            if k in config.model and saved_model.get(k, 0) != config.model.get(k)]
  if differ:
    raise UserError(f'config.init_from={config.init_from!r} holds another model shape ('
                    + ', '.join(f'model.{k}={saved_model.get(k)!r}' for k in differ)
                    + '); use the config the pre-trained run used')


def check_token_table(tokenizer, shapes, where: str) -> None:
  """The tokenizer's size must be the token embedding table's (an imported vocabulary can
  differ from the checkpoint it came with)."""
  flat = traverse_util.flatten_dict(dict(shapes))
  rows = [v.shape[0] for k, v in flat.items() if k[-2:] == ('token', 'embedding')]
  if rows:
    tokenizer_lib.check_vocab_size(tokenizer, rows[0], f'the checkpoint in {where}')
