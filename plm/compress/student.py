"""The distillation student: an EncoderLM that also returns what a teacher is matched on."""
import flax.linen as nn
import jax.numpy as jnp

from plm.models.encoder import EncoderLM
from plm.nn.attention import dense_init

P = nn.with_logical_partitioning


class StudentLM(EncoderLM):
  """EncoderLM plus TinyBERT's learned projections of its hidden states to the teacher's width.

  Its params are an EncoderLM's ('encoder', 'mlm_head') plus 'kd_projection' (one
  [hidden, teacher_hidden] map per matched layer, embeddings included), so a distilled
  run loads as a plain encoder_lm (plm.load) and fine-tunes like one (init_from).
  """
  teacher_hidden: int = 0  # the teacher's width; 0 = no projection (no hidden-state loss)

  def setup(self):
    super().setup()
    if self.teacher_hidden:
      n, h = self.encoder.layers + 1, self.encoder.hidden
      self.kd_kernel = self.param('kd_projection', P(dense_init(), (None, 'embed', 'mlp')),
                                  (n, h, self.teacher_hidden))

  def project(self, states):
    """Hidden states [layers + 1 of [B, L, H]] to the teacher's width."""
    return tuple(s.astype(jnp.float32) @ self.kd_kernel[i] for i, s in enumerate(states))


def layers_and_logits(model: EncoderLM, tokens, positions, mask, *, predict_positions,
                      deterministic: bool = True, **kwargs):
  """(vocabulary logits at predict_positions, every layer's states): an EncoderLM method."""
  states = model.encoder(tokens, positions, mask, deterministic=deterministic, all_layers=True,
                         **kwargs)
  picked = jnp.take_along_axis(states[-1], predict_positions[..., None], axis=1)
  return model.logits(picked), states
