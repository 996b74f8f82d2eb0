"""All orbax code: save, restore, and the resume order.

Resume order (first that applies):
  1. the newest readable checkpoint in `{workdir}/checkpoints` (a broken newest
     one is reported and the previous step is used);
  2. `config.init_from`: parameters only, from another run's checkpoint directory;
  3. scratch.
A checkpoint holds the whole train state (params, opt_state, step, rng) and a
JSON `meta` item: vocabulary and data fingerprints and the data position.
"""
import os

from absl import logging
import jax
import orbax.checkpoint as ocp


def manager(workdir: str, *, max_to_keep: int = 3) -> ocp.CheckpointManager:
  directory = os.path.join(os.path.abspath(os.path.expanduser(workdir)), 'checkpoints')
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(directory, options=options, item_names=('state', 'meta'))


def save(mngr: ocp.CheckpointManager, step: int, state, meta: dict) -> None:
  """Starts an async save of `state` and `meta` at `step` (force: ignores intervals)."""
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          meta=ocp.args.JsonSave(meta)), force=True)


def _abstract(tree, shardings):
  return jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def restore_latest(mngr: ocp.CheckpointManager, abstract_state, shardings):
  """(state, meta) from the newest readable step, or (None, None) if there is none."""
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      restored = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_abstract(abstract_state, shardings)),
          meta=ocp.args.JsonRestore()))
    except Exception as e:  # pylint: disable=broad-except  # any unreadable file
      logging.error('checkpoint at step %d is unreadable (%s: %s); trying the previous one',
                    step, type(e).__name__, e)
      continue
    logging.info('restored step %d from %s', step, mngr.directory)
    return restored['state'], restored['meta']
  return None, None


def restore_params(directory: str, abstract_params, shardings):
  """Parameters of the newest step under `directory` (for config.init_from)."""
  mngr = ocp.CheckpointManager(os.path.abspath(os.path.expanduser(directory)),
                               item_names=('state', 'meta'))
  step = mngr.latest_step()
  if step is None:
    raise FileNotFoundError(f'config.init_from={directory!r} holds no checkpoint; point it at '
                            'the checkpoints/ directory of a finished run')
  abstract = {'params': _abstract(abstract_params, shardings)}
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.PyTreeRestore(item=abstract, partial_restore=True),
      meta=ocp.args.JsonRestore()))
  return restored['state']['params'], restored['meta']
