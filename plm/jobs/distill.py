"""The `distill` job: general distillation of a student encoder from a trained teacher run.

  python -m plm.main --config=configs/tiny.py --config.distill.teacher=runs/teacher \
      --workdir=runs/student

The teacher is any plm encoder_lm run directory (pre-trained with `train`, or converted
from HF BERT with plm/convert/hf_bert.py); its params ride in the loop's frozen extras
(plm/compress/distill.py). The student is config.model on the teacher's vocabulary: the
distillation losses compare the two at the same tokens, so another vocabulary is an error.
The held-out table reports every head (mlm, kl, hidden, attention) on the test split.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from plm import objectives, run, train
from plm import meta as meta_lib
from plm import workdir as workdir_lib
from plm.compress import distill
from plm.compress.student import StudentLM
from plm.data import mixing
from plm.errors import UserError
from plm.evaluate import heldout
from plm.models import encoder as encoder_lib


def load_teacher(config):
  """The teacher run (plm.workdir.Loaded), checked against what the chosen losses need."""
  dc = config.distill
  if not dc.teacher:
    raise UserError('distill.teacher is empty; set --config.distill.teacher to the run '
                    'directory of a trained encoder_lm (e.g. configs/tiny.py:teacher)')
  teacher = workdir_lib.load(dc.teacher)
  if teacher.config.model.name != 'encoder_lm':
    raise UserError(f'distill.teacher={dc.teacher!r} is a {teacher.config.model.name!r} run; '
                    'the teacher must be an encoder_lm (a masked language model)')
  student, tm = config.model, teacher.model.encoder
  if student.get('num_languages', 0) != tm.num_languages:
    raise UserError(f'the teacher has {tm.num_languages} language embeddings, the student '
                    f"{student.get('num_languages', 0)}; give the student the teacher's "
                    'data.languages and model.num_languages')
  if 'attention' in dc.losses:
    heads = encoder_lib.build_encoder(student, 1).heads
    if heads != tm.heads or tm.layer_heads:
      raise UserError(f"distill.losses has 'attention', which compares attention maps head "
                      f'by head, but the student has {heads} heads and the teacher '
                      f'{tm.layer_heads or tm.heads}; set model.heads={tm.heads} or drop '
                      "'attention' from distill.losses")
    if student.attention != 'einsum':
      raise UserError("distill.losses has 'attention', which reads the attention "
                      "probabilities: set model.attention='einsum' (the fused kernels hide them)")
  return teacher


def teacher_extras(teacher, seq_len: int):
  """() -> {'teacher': its params boxed with their logical axes}, for the loop's extras."""
  def make():
    tokens = jnp.zeros((1, seq_len), jnp.int32)
    example = dict(tokens=tokens, positions=tokens, mask=jnp.ones((1, 1, seq_len, seq_len), bool))
    if teacher.model.encoder.num_languages:
      example['langs'] = tokens
    boxed = jax.eval_shape(teacher.model.init, jax.random.PRNGKey(0), **example)['params']
    is_box = lambda x: isinstance(x, nn.meta.AxisMetadata)
    params = jax.tree_util.tree_map(lambda b, v: b.replace_boxed(v) if is_box(b) else v,
                                    boxed, teacher.params, is_leaf=is_box)
    return {'teacher': params}
  return make


def make_task(config, tokenizer, teacher) -> train.Task:
  """MLM rows of the configured corpus, the student and the distillation objective."""
  if config.model.name != 'encoder_lm':
    raise UserError(f"model.name={config.model.name!r}: the student is an 'encoder_lm'")
  if config.data.seq_len > min(config.model.max_len, teacher.model.encoder.max_len):
    raise UserError(f'data.seq_len={config.data.seq_len} exceeds model.max_len of the '
                    'student or the teacher; lower data.seq_len')
  rows = mixing.make_train_dataset(config.data, tokenizer)
  counts = rows.token_counts(tokenizer.vocab_size)
  print(f'distill: {len(rows)} training rows of {config.data.seq_len} tokens; teacher '
        f'{config.distill.teacher} (step {teacher.step}), losses {tuple(config.distill.losses)}',
        flush=True)
  base_config = config.copy_and_resolve_references()
  base_config.objective.loss_weights = {}  # they weigh the distillation heads (checked below)
  base = objectives.build(base_config, tokenizer, counts)
  if base.heads != ('mlm',):
    raise UserError(f"objective.name={config.objective.name!r}: distillation runs on 'mlm'")
  hidden = 'hidden' in config.distill.losses
  student = StudentLM(encoder_lib.build_encoder(config.model, tokenizer.vocab_size),
                      teacher_hidden=teacher.model.encoder.hidden if hidden else 0)
  objective = distill.make(
      base, teacher.model, student.encoder.layers, losses=tuple(config.distill.losses),
      temperature=config.distill.temperature,
      prior_logp=objectives.base.unigram_logp(counts, objectives.special_ids(tokenizer)),
      make_extras=teacher_extras(teacher, config.data.seq_len))
  objectives.base.loss_weights(objective, config.objective.get('loss_weights'))
  return train.Task('distill', student, config.model, objective, rows,
                    lambda split: heldout.language_sets(config.data, tokenizer, split),
                    meta=meta_lib.of_tokenizer(tokenizer))


def distill_job(config, workdir: str) -> dict:
  """Distils (resuming), then prints and writes the test results."""
  config = run.resolve(config)
  teacher = load_teacher(config)
  teacher_vocab = workdir_lib.vocab_path(teacher.config,
                                         workdir_lib.workdir_path(config.distill.teacher))
  if not config.data.vocab_path:  # the distillation losses compare the same tokens
    config.data.vocab_path = teacher_vocab
  tokenizer = workdir_lib.load_tokenizer(config, workdir_lib.workdir_path(workdir))
  if tokenizer.fingerprint != teacher.tokenizer.fingerprint:
    raise UserError(f'data.vocab_path={config.data.vocab_path!r} is vocabulary '
                    f'{tokenizer.fingerprint}, the teacher was trained on '
                    f'{teacher.tokenizer.fingerprint}; distill.losses '
                    f'{tuple(config.distill.losses)} compare the two models token by token, '
                    f"so leave data.vocab_path empty (the teacher's {teacher_vocab})")
  return train.train_and_evaluate(config, workdir, make_task(config, tokenizer, teacher))
