"""All orbax code: save, restore, and the resume order.

Resume order (first that applies):
  1. the newest readable checkpoint in `{workdir}/checkpoints`; an unreadable
     newer one (truncated, half-written) is reported, renamed `<step>.broken`
     so the run can save that step again, and the previous step is used;
  2. `config.init_from`: parameters only, from another run's checkpoint directory;
  3. scratch.
A checkpoint holds the whole train state (params, opt_state, step, rng) and a
JSON `meta` item: vocabulary and data fingerprints and the data position; a run
that streams a prepared corpus adds `data`, its grain iterator's state (one JSON
file per process), so a resume reads on from the next unseen batch.
"""
import os

from absl import logging
import jax
import grain
import orbax.checkpoint as ocp

from plm.errors import MissingFileError, UserError


def manager(workdir: str, *, max_to_keep: int = 3) -> ocp.CheckpointManager:
  directory = os.path.join(os.path.abspath(os.path.expanduser(workdir)), 'checkpoints')
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(directory, options=options,
                               item_names=('state', 'meta', 'data'))


class CheckpointWriteError(OSError):
  pass


def save(mngr: ocp.CheckpointManager, step: int, state, meta: dict, data=None) -> None:
  """Starts an async save of `state` and `meta` at `step` (force: ignores intervals);
  `data`, a grain iterator, has its state written as it is now (synchronously).

  Orbax writes into a temporary directory and renames it when complete, so a
  failed or interrupted save never replaces an earlier checkpoint.
  """
  try:
    mngr.wait_until_finished()  # surfaces a failure of the previous async save
    items = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    if data is not None:
      items['data'] = grain.checkpoint.CheckpointSave(data)
    mngr.save(step, args=ocp.args.Composite(**items), force=True)
  except Exception as e:  # pylint: disable=broad-except  # disk full, permissions, ...
    raise write_error(mngr, step, e) from None


def wait(mngr: ocp.CheckpointManager, step: int) -> None:
  """Blocks until the async save of `step` is on disk."""
  try:
    mngr.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    raise write_error(mngr, step, e) from None


def write_error(mngr, step: int, e: Exception) -> CheckpointWriteError:
  kept = [s for s in mngr.all_steps() if s != step]
  previous = f'step {max(kept)} is intact' if kept else 'no earlier checkpoint exists'
  return CheckpointWriteError(
      f'could not write the checkpoint of step {step} to {mngr.directory} '
      f'({type(e).__name__}: {e}); free disk space or fix the directory\'s permissions '
      f'and rerun to resume ({previous})')


def _abstract(tree, shardings):
  return jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def restore_latest(mngr: ocp.CheckpointManager, abstract_state, shardings, check_meta=None):
  """(state, meta) from the newest readable step, or (None, None) if there is none.

  `check_meta(meta)` runs before the state is read and raises if the checkpoint
  belongs to another model or vocabulary: such a checkpoint is refused, never
  treated as broken.
  """
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']
    except Exception as e:  # pylint: disable=broad-except  # any unreadable file
      set_aside(mngr, step, e)
      continue
    if check_meta is not None:
      check_meta(meta)
    try:
      restored = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_abstract(abstract_state, shardings))))
    except Exception as e:  # pylint: disable=broad-except
      set_aside(mngr, step, e)
      continue
    logging.info('restored step %d from %s', step, mngr.directory)
    return restored['state'], meta
  return None, None


def restore_data(mngr: ocp.CheckpointManager, step: int, iterator) -> None:
  """Sets `iterator` (grain) to the state saved with `step`; a checkpoint without one
  (saved by a run that read its corpus in memory) is a clear error."""
  if not os.path.isdir(os.path.join(str(mngr.directory), str(step), 'data')):
    raise UserError(f'checkpoint step {step} in {mngr.directory} has no data-iterator state: '
                    'it was trained on the in-memory corpus, not data.prepared_dir. Resume '
                    'with the data settings the run had, or start in a new --workdir')
  mine = f'process_{jax.process_index()}-of-{jax.process_count()}.json'  # grain's file name
  saved = sorted(os.listdir(os.path.join(str(mngr.directory), str(step), 'data')))
  if mine not in saved:  # each process reads its own shard: the split must stay the same
    raise UserError(f'checkpoint step {step} holds data-iterator states {saved}, none for '
                    f'this process ({mine}); resume with the process count the run had')
  mngr.restore(step, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(iterator)))


def set_aside(mngr: ocp.CheckpointManager, step: int, e: Exception) -> None:
  """Renames an unreadable step to `<step>.broken` (kept for inspection) and says why."""
  broken = os.path.join(str(mngr.directory), f'{step}.broken')
  message = (f'checkpoint step {step} is unreadable ({type(e).__name__}: '
             f'{str(e).splitlines()[0][:300]}); moved it to {broken} and trying the '
             'previous step')
  logging.info(message)  # printed once below; the log would repeat it on stderr
  print(message, flush=True)
  os.replace(os.path.join(str(mngr.directory), str(step)), broken)
  mngr.reload()


def _reader(directory: str) -> ocp.CheckpointManager:
  """A manager that can read a checkpoint's metadata (shapes) without restoring arrays."""
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  registry.add('state', ocp.args.StandardRestore, ocp.StandardCheckpointHandler)
  registry.add('meta', ocp.args.JsonRestore, ocp.JsonCheckpointHandler)
  return ocp.CheckpointManager(os.path.abspath(os.path.expanduser(directory)),
                               handler_registry=registry)


def saved_params(directory: str, check=None):
  """(step, {name: ShapeDtypeStruct} tree of the saved params, meta) of the newest step.

  `check(meta)` runs on the saved meta before anything else is read, so a
  checkpoint of another vocabulary or model is refused by name.
  """
  mngr = _reader(directory)
  step = mngr.latest_step()
  if step is None:
    raise MissingFileError(f'{directory!r} holds no checkpoint; point config.init_from (or '
                           '--workdir) at the checkpoints/ directory of a finished run')
  meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']
  if check:
    check(meta)
  tree = dict(mngr.item_metadata(step)['state'])['params']
  shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), dict(tree))
  return step, shapes, meta


def restore_params(directory: str, abstract_params, shardings, check=None):
  """Parameters of the newest step under `directory`: the subtrees `abstract_params` names.

  `abstract_params` may be part of the saved tree (a pre-trained encoder without
  its LM head); `check(meta)` runs on the saved meta before any array is read.
  """
  step, _, meta = saved_params(directory, check)
  abstract = {'params': _abstract(abstract_params, shardings)}
  mngr = ocp.CheckpointManager(os.path.abspath(os.path.expanduser(directory)),
                               item_names=('state', 'meta'))
  restored = mngr.restore(step, args=ocp.args.Composite(
      # restore_args: the requested shardings, not those saved (another topology's devices).
      state=ocp.args.PyTreeRestore(item=abstract, partial_restore=True,
                                   restore_args=ocp.checkpoint_utils.construct_restore_args(
                                       abstract))))
  return restored['state']['params'], meta
