"""ERNIE 2.0 (Sun et al., 2020): one shared encoder with task embeddings, one head per task.

The encoder is plm's BERT encoder with `num_tasks` task embeddings added to its input (the
task id of every row). Heads, named by task (`model.task_heads`, task -> classes):
  classes 0   the tied vocabulary head (masked-token tasks: knowledge masking)
  classes > 0 a Dense on the hidden states; a token task reads every position, a sentence
              task position 0 (the bos) through BERT's pooler (Dense + tanh)
"""
import flax.linen as nn
import jax.numpy as jnp

from plm.errors import UserError
from plm.models import encoder as encoder_lib
from plm.models.encoder import Encoder
from plm.nn import precision
from plm.nn.attention import dense_init
from plm.nn.heads import MlmHead

P = nn.with_logical_partitioning
SHAPE_FIELDS = encoder_lib.SHAPE_FIELDS  # the shared encoder's; init_from must match them


class Ernie2(nn.Module):
  """Encoder + a vocabulary head + one classification head per task."""
  encoder: Encoder
  task_heads: tuple  # ((task, classes), ...); classes 0 = the vocabulary head

  def setup(self):
    self.mlm_head = MlmHead(self.encoder.vocab_size, self.encoder.activation,
                            self.encoder.ln_eps, self.encoder.dtype)
    mixed = precision.dot_general(self.encoder.dtype)
    self.pooler = nn.Dense(self.encoder.hidden, dot_general=mixed, name='pooler',
                           kernel_init=P(dense_init(), ('embed', 'mlp')),
                           bias_init=P(nn.initializers.zeros, ('mlp',)))
    self.heads = {task: nn.Dense(classes, dot_general=mixed, name=f'head_{task}',
                                 kernel_init=P(dense_init(), ('embed', 'classes')),
                                 bias_init=P(nn.initializers.zeros, ('classes',)))
                  for task, classes in self.task_heads if classes}

  def __call__(self, tokens, positions, mask, *, token_types=None, tasks=None,
               deterministic: bool = True):
    """Hidden states [B, L, H]; run every head once at init so all params exist."""
    x = self.encoder(tokens, positions, mask, token_types=token_types, tasks=tasks,
                     deterministic=deterministic)
    if self.is_initializing():
      self.vocab_logits(x[:, :1])
      for task in self.heads:
        self.token_logits(x[:, :1], task)
        self.sentence_logits(x, task)
    return x

  def vocab_logits(self, x):
    return self.mlm_head(x, self.encoder.embeddings.attend)

  def token_logits(self, x, task: str):
    """Logits [B, L, classes] of a per-token task."""
    return self.heads[task](x)

  def sentence_logits(self, x, task: str):
    """Logits [B, classes] of a per-row task, from position 0 through the pooler."""
    return self.heads[task](jnp.tanh(self.pooler(x[:, 0])))

  def sentence_vectors(self, tokens, langs=None, **options):
    return self.encoder.sentence_vectors(tokens, langs, **options)


def config():
  """The encoder's fields plus the task heads (the ernie2 job sets them from its tasks)."""
  c = encoder_lib.config()
  c.num_tasks = 1  # task embeddings: one per task of the schedule (>= the tasks trained)
  c.task_heads = ()  # ((task, classes), ...); classes 0 = vocabulary head; set by the job
  return c


def build(mc, vocab_size: int) -> Ernie2:
  heads = tuple((str(t), int(k)) for t, k in mc.task_heads)
  if len(heads) > mc.num_tasks:
    raise UserError(f'model.num_tasks={mc.num_tasks} but the schedule trains {len(heads)} '
                    f'tasks ({[t for t, _ in heads]}); raise model.num_tasks')
  if not heads:
    raise UserError('model.task_heads is empty: the ernie2 job sets it from ernie2.stages')
  return Ernie2(encoder_lib.build_encoder(mc, vocab_size), heads)
