"""Structured pruning: attention heads and feed-forward units really removed.

Importance is the first-order Taylor estimate of the loss change when a unit is
removed (Michel et al., 2019 for heads; Molchanov et al., 2017): a head h writes
o_h @ W_out[h] into the residual stream, so d loss / d (gate of h) = <W_out[h],
dL/dW_out[h]>, read off ordinary parameter gradients; likewise <wo[j], dL/dwo[j]> for
feed-forward unit j. Scores are |.| per held-out batch, averaged, and ranked globally
across layers (each layer keeps at least one head and one unit). The pruned model has
per-layer head and unit counts (model.layer_heads, model.layer_ff), so it is smaller
and faster, not only sparse.
"""
import jax
import numpy as np

from plm.errors import UserError

ATTENTION = ('query', 'key', 'value')  # kernels [embed, heads, kv], biases [heads, kv]


def check_ratio(name: str, ratio: float) -> None:
  if not 0.0 <= ratio < 1.0:
    raise UserError(f'compress.{name}={ratio} must be in [0, 1): the share of units removed')


def layers(params) -> list[str]:
  enc = params['encoder']
  return sorted((k for k in enc if k.startswith('layer_')), key=lambda k: int(k[6:]))


def taylor_scores(params, grads) -> tuple[list, list]:
  """(per layer [heads] scores, per layer [ff] scores) of one batch's gradients."""
  heads, ff = [], []
  for name in layers(params):
    p, g = params['encoder'][name], grads['encoder'][name]
    out, g_out = p['self_attention']['out']['kernel'], g['self_attention']['out']['kernel']
    heads.append(np.abs(np.sum(np.asarray(out) * np.asarray(g_out), axis=(1, 2))))
    wo, g_wo = p['mlp']['wo']['kernel'], g['mlp']['wo']['kernel']
    ff.append(np.abs(np.sum(np.asarray(wo) * np.asarray(g_wo), axis=1)))
  return heads, ff


def choose(scores: list, ratio: float, name: str) -> list[np.ndarray]:
  """Sorted indices kept per layer: the lowest `ratio` of all units removed, by score,
  ranked across layers, leaving each layer at least one."""
  check_ratio(name, ratio)
  total = sum(len(s) for s in scores)
  drop = int(np.floor(ratio * total))
  order = sorted((float(s), i, j) for i, layer in enumerate(scores) for j, s in enumerate(layer))
  removed = [set() for _ in scores]
  for _, i, j in order:
    if drop == 0:
      break
    if len(removed[i]) < len(scores[i]) - 1:
      removed[i].add(j)
      drop -= 1
  return [np.array([j for j in range(len(layer)) if j not in removed[i]], np.int64)
          for i, layer in enumerate(scores)]


def prune_params(params, keep_heads: list, keep_ff: list):
  """The params with only the kept heads and feed-forward units of each layer."""
  params = jax.tree_util.tree_map(np.asarray, jax.device_get(params))
  enc = dict(params['encoder'])
  for name, h, f in zip(layers(params), keep_heads, keep_ff):
    layer = dict(enc[name])
    att = {k: dict(v) for k, v in layer['self_attention'].items()}
    for k in ATTENTION:
      att[k] = dict(kernel=att[k]['kernel'][:, h], bias=att[k]['bias'][h])
    att['out'] = dict(kernel=att['out']['kernel'][h], bias=att['out']['bias'])
    mlp = {k: dict(v) for k, v in layer['mlp'].items()}
    mlp['wi'] = dict(kernel=mlp['wi']['kernel'][:, f], bias=mlp['wi']['bias'][f])
    mlp['wo'] = dict(kernel=mlp['wo']['kernel'][f], bias=mlp['wo']['bias'])
    layer.update(self_attention=att, mlp=mlp)
    enc[name] = layer
  return {**params, 'encoder': enc}


def mask_params(params, keep_heads: list, keep_ff: list):
  """The unpruned params with every removed head's and unit's output weights zeroed: the
  reference a pruned model must equal."""
  params = jax.tree_util.tree_map(lambda x: np.array(x), jax.device_get(params))
  for name, h, f in zip(layers(params), keep_heads, keep_ff):
    layer = params['encoder'][name]
    out = layer['self_attention']['out']['kernel']
    out[np.setdiff1d(np.arange(out.shape[0]), h)] = 0.0
    wo = layer['mlp']['wo']['kernel']
    wo[np.setdiff1d(np.arange(wo.shape[0]), f)] = 0.0
  return params
