"""Device mesh and logical-axis rules: one code path for 1 CPU, 8 GPUs or a pod.

Parameters and activations name their axes logically ('embed', 'heads', ...);
the config's rules table maps those names to mesh axes ('data', 'fsdp',
'model'). A pmap user's data parallelism is the mesh `data=-1`, the default.
"""
import math
from typing import Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from plm.errors import UserError

MESH_AXES = ('data', 'fsdp', 'model')

# Logical axis -> mesh axis (None = replicated), as in t5x's standard rules.
DEFAULT_RULES = (
    ('batch', ('data', 'fsdp')),
    ('length', None),
    ('embed', 'fsdp'),
    ('vocab', 'model'),
    ('heads', 'model'),
    ('kv', None),
    ('mlp', 'model'),
    ('pos', None),
    ('types', None),
    ('classes', None),
)


def make_mesh(shape: dict, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A mesh over `devices` with axes data/fsdp/model; one axis may be -1 (the rest)."""
  devices = list(jax.devices() if devices is None else devices)
  unknown = set(shape) - set(MESH_AXES)
  if unknown:
    raise UserError(f'mesh axes {sorted(unknown)} are unknown; use {MESH_AXES}')
  sizes = [int(shape.get(a, 1)) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise UserError(f'mesh {dict(shape)}: at most one axis may be -1')
  if -1 in sizes:
    rest = math.prod(s for s in sizes if s != -1)
    if len(devices) % rest:
      raise UserError(f'mesh {dict(shape)}: {len(devices)} devices are not divisible by {rest}; '
                      'change config.mesh so the fixed axes divide the device count')
    sizes[sizes.index(-1)] = len(devices) // rest
  if math.prod(sizes) != len(devices):
    raise UserError(f'mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices but '
                    f'{len(devices)} are present; change config.mesh so its product is '
                    f'{len(devices)} (or set one axis to -1)')
  return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES)


def check_rules(rules) -> tuple:
  """Rules as a tuple of pairs, each mesh axis known."""
  rules = tuple((logical, tuple(m) if isinstance(m, list) else m) for logical, m in rules)
  for logical, mesh_axes in rules:
    for axis in (mesh_axes if isinstance(mesh_axes, tuple) else (mesh_axes,)):
      if axis is not None and axis not in MESH_AXES:
        raise UserError(f'axis rule ({logical!r} -> {axis!r}) names an unknown mesh axis; '
                        f'use one of {MESH_AXES} or None')
  return rules


def check_logical_axes(rules, abstract_tree) -> None:
  """Every logical axis of the model has a rule, and every rule names a known axis.

  Flax replicates an axis that no rule names, so a typo ('emebd') would
  silently turn fsdp or tensor parallelism off; this makes it an error.
  """
  used = set()
  for spec in jax.tree_util.tree_leaves(nn.get_partition_spec(abstract_tree),
                                        is_leaf=lambda x: isinstance(x, PartitionSpec)):
    used.update(name for name in spec if isinstance(name, str))
  named = {logical for logical, _ in rules}
  known = used | {logical for logical, _ in DEFAULT_RULES}
  if used - named:
    raise UserError(f'config.rules has no rule for the logical axes {sorted(used - named)}; add '
                    "e.g. ('embed', None) to replicate one (see plm/partitioning.py)")
  if named - known:
    raise UserError(f'config.rules names unknown logical axes {sorted(named - known)}; the '
                    f'model has {sorted(known)}')


def logical_shardings(mesh: Mesh, rules, abstract_tree):
  """NamedShardings for a tree of (boxed) abstract values with logical axes."""
  specs = nn.get_partition_spec(abstract_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over data and fsdp; the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(('data', 'fsdp')))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def data_parallel_size(mesh: Mesh) -> int:
  return mesh.shape['data'] * mesh.shape['fsdp']
