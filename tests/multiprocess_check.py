"""One process of a multi-process run on fake CPU devices: two train steps, saved, restored.

  XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu \
  JAX_COORDINATOR_ADDRESS=localhost:PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=I \
      python tests/multiprocess_check.py TFDS_DIR VOCAB_PATH WORKDIR LAYOUT OUT.npz

Joins the processes through plm.distributed (no coordinator in the environment:
a single process), trains two steps of configs/xlm.py:tiny on the mesh LAYOUT
(data8 | fsdp8) over all processes' devices, each process feeding only its own
rows; saves an orbax checkpoint from all processes, restores it into fresh
shards, checks it equals the trained state, and (process 0) writes the
gathered params and the loss to OUT.npz.
"""
import sys

sys.path.insert(0, __file__.rsplit('/tests/', 1)[0])
# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import xlm
from plm import distributed

LAYOUTS = {'data8': dict(data=8, fsdp=1, model=1), 'fsdp8': dict(data=1, fsdp=8, model=1)}


def main(tfds_dir, vocab_path, workdir, layout, out):
  config = xlm.get_config('tiny')
  config.data.tfds_dir, config.data.vocab_path = tfds_dir, vocab_path
  config.mesh.update(LAYOUTS[layout])
  config.model.dropout = config.model.attention_dropout = 0.1  # random bits: layout-independent
  distributed.initialize(config.distributed)  # from JAX_COORDINATOR_ADDRESS etc.

  import jax
  import numpy as np
  from jax.experimental import multihost_utils
  from plm import checkpoint, run, train
  from plm import workdir as workdir_lib
  from plm.jobs import pretrain
  assert len(jax.devices()) == 8, f'{len(jax.devices())} devices; want 8 over all processes'
  config = run.resolve(config)
  tokenizer = workdir_lib.load_tokenizer(config, workdir)
  task = pretrain.make_task(config, tokenizer)
  s = train.setup(config, task)
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(config.seed), s.extras)
    for step in range(2):
      local = task.train_rows.batch(step, config.train.batch_size, seed=config.seed,
                                    process_index=jax.process_index(),
                                    process_count=jax.process_count())
      state, metrics = s.train_step(state, s.extras, s.put(local))
  mngr = checkpoint.manager(workdir)
  checkpoint.save(mngr, 2, state, dict(s.meta, data_step=2))
  checkpoint.wait(mngr, 2)
  restored, _ = checkpoint.restore_latest(checkpoint.manager(workdir), s.abstract_state,
                                          s.state_sharding)
  params = multihost_utils.process_allgather(state['params'], tiled=True)
  again = multihost_utils.process_allgather(restored['params'], tiled=True)
  for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(again)):
    np.testing.assert_array_equal(a, b)
  flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(params)}
  print(f'process {jax.process_index()}/{jax.process_count()}: '
        f'{len(jax.local_devices())} local devices, loss {float(metrics["loss"]):.6f}', flush=True)
  if jax.process_index() == 0:
    np.savez(out, loss=float(metrics['loss']), **flat)


if __name__ == '__main__':
  main(*sys.argv[1:6])
