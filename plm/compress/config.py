"""The config fields of distillation (distill.*), compression (compress.*) and the model
fields compression writes (model.layer_heads, model.layer_ff, model.quant)."""
import ml_collections

from plm.errors import UserError

LOSSES = ('kl', 'hidden', 'attention')  # distill.losses: what the student matches


def distill_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.teacher = ''  # the teacher: a plm run directory (config.json, vocab/, checkpoints/)
  # what the student matches besides the hard MLM labels (objective.loss_weights weighs
  # each head, e.g. {'mlm': 1.0, 'kl': 1.0}): 'kl' (soft targets on the masked
  # positions' vocabulary logits), 'hidden' (MSE of hidden states, through a learned
  # projection where the widths differ), 'attention' (MSE of attention distributions);
  # all three need the teacher's vocabulary (the same tokens at the same positions)
  c.losses = ('kl', 'hidden', 'attention')
  c.temperature = 2.0  # softmax temperature of the soft targets (the KL is scaled by T^2)
  # student layer k (1..layers) matches teacher layer k * teacher_layers / student_layers
  # (TinyBERT's uniform map); the embeddings (layer 0) always match layer 0
  return c


def compress_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.source = ''  # the trained run to compress (a plm run directory)
  c.quantize = ''  # '' = none, 'int8' (weights per output channel, activations per row)
  c.prune_heads = 0.0  # share of attention heads removed, least important first, in [0, 1)
  c.prune_ff = 0.0  # share of feed-forward units removed, least important first, in [0, 1)
  c.importance_batches = 4  # held-out (validation) batches the importance scores average over
  return c


# The model.* fields of a compressed encoder, set by the compress job (plm/jobs/compress.py),
# not by hand; each default is the uncompressed model, so a run saved before the fields
# existed (or without them) means these values:
#   layer_heads: attention heads per layer left by pruning (plm/compress/prune.py); () =
#     model.heads in every layer. The head width stays hidden // heads.
#   layer_ff: feed-forward units per layer left by pruning; () = model.ff in every layer.
#   quant: '' = float weights; 'int8' = int8 block kernels with per-output scales
#     (plm/compress/quantize.py, plm/nn/quant.py).
# plm/meta.py's checkpoint check reads an absent field as its DEFAULTS value.
DEFAULTS = dict(layer_heads=(), layer_ff=(), quant='')


def add_model_fields(mc: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`mc` (an encoder's model.* fields) with the compression fields at their DEFAULTS."""
  for key, value in DEFAULTS.items():
    mc[key] = value
  return mc


def model_fields(mc) -> dict:
  """The compression fields of model config `mc` (DEFAULTS where absent), as tuples and str."""
  return dict(layer_heads=tuple(mc.get('layer_heads', ())), layer_ff=tuple(mc.get('layer_ff', ())),
              quant=mc.get('quant', ''))


def layer_shapes(layers: int, heads: int, ff: int, layer_heads: tuple, layer_ff: tuple):
  """(heads per layer, feed-forward units per layer) of a possibly pruned encoder."""
  layer_heads = tuple(layer_heads) or (heads,) * layers
  layer_ff = tuple(layer_ff) or (ff,) * layers
  if len(layer_heads) != layers or len(layer_ff) != layers:
    raise UserError(f'model.layer_heads={layer_heads} / model.layer_ff={layer_ff} need one '
                    f'entry per layer ({layers}), or none')
  return layer_heads, layer_ff
