"""The config fields of distillation (distill.*) and compression (compress.*)."""
import ml_collections

LOSSES = ('kl', 'hidden', 'attention')  # distill.losses: what the student matches


def distill_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.teacher = ''  # the teacher: a plm run directory (config.json, vocab/, checkpoints/)
  # what the student matches besides the hard MLM labels: 'kl' (soft targets on the masked
  # positions' vocabulary logits), 'hidden' (MSE of hidden states, through a learned
  # projection where the widths differ), 'attention' (MSE of attention distributions);
  # all three need the teacher's vocabulary (the same tokens at the same positions)
  c.losses = ('kl', 'hidden', 'attention')
  c.temperature = 2.0  # softmax temperature of the soft targets (the KL is scaled by T^2)
  c.hard_weight = 1.0  # weight of the student's own MLM loss on the true tokens; 0 = none
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
