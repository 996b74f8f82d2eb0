"""Translation (head 'mt'): teacher forcing on pair rows (plm.data.sentences.pair_rows).

The encoder reads the source row whole; the decoder reads `[bos] target` and
predicts `target [eos]`, one step ahead. Example, tgt_tokens `b 8 9 e 0`:
  decoder input  b 8 9 0     positions 0 1 2 0
  targets        8 9 e 0     weights   1 1 1 0
The eos is only a target (nothing follows it), so its input slot is padding
(0, plm's pad id) and lies outside tgt_mask and cross_mask.
"""
import jax.numpy as jnp
import numpy as np

from plm import masks
from plm.objectives import base

HEAD = 'mt'


def make():
  """Returns `translation(rng, batch) -> (inputs, ids, weights)`; ids are [B, Lt - 1]."""

  def translation(rng, batch):
    del rng  # teacher forcing corrupts nothing
    src_valid = batch['src_segment_ids'] > 0
    tgt, tgt_seg = batch['tgt_tokens'], batch['tgt_segment_ids']
    dec_valid = (tgt_seg[:, 1:] > 0) & (tgt_seg[:, :-1] > 0)  # a real next token to predict

    def decoder_in(x):
      return jnp.where(dec_valid, x[:, :-1], 0)

    inputs = dict(
        src_tokens=batch['src_tokens'], src_positions=batch['src_positions'],
        src_mask=masks.padding_mask(src_valid),
        tgt_tokens=decoder_in(tgt), tgt_positions=decoder_in(batch['tgt_positions']),
        tgt_mask=masks.causal_mask(dec_valid),
        cross_mask=masks.cross_attention_mask(dec_valid, src_valid))
    if 'src_langs' in batch:
      inputs.update(src_langs=batch['src_langs'], tgt_langs=decoder_in(batch['tgt_langs']))
    return inputs, tgt[:, 1:].astype(jnp.int32), dec_valid.astype(jnp.float32)

  return translation


def objective(*, prior_logp: np.ndarray | None = None, loss_chunk: int = 0) -> base.Objective:
  """The 'mt' head as an Objective (plm.objectives.base.token_objective)."""
  return base.token_objective(HEAD, make(), prior_logp=prior_logp, loss_chunk=loss_chunk)
