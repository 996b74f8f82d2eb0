"""Run as a script under 8 fake CPU devices: one step per mesh layout, compared.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/multidevice_check.py \
      TFDS_DIR VOCAB_PATH WORKDIR

Prints one line per layout: its name and the max abs difference of params and
loss after two train steps against the single-device run (dropout on).
"""
import sys

import jax
import numpy as np

sys.path.insert(0, __file__.rsplit('/tests/', 1)[0])
from configs import xlm  # pylint: disable=g-import-not-at-top,wrong-import-position
from plm import run, train  # pylint: disable=g-import-not-at-top, wrong-import-position
from plm import workdir as workdir_lib
from plm.jobs import pretrain  # pylint: disable=g-import-not-at-top,wrong-import-position

LAYOUTS = {
    'single': dict(data=1, fsdp=1, model=1),
    'data4_model2': dict(data=4, fsdp=1, model=2),
    'fsdp8': dict(data=1, fsdp=8, model=1),
    'data2_fsdp2_model2': dict(data=2, fsdp=2, model=2),
}


def two_steps(tfds_dir, vocab_path, workdir, layout):
  config = xlm.get_config('tiny')
  config.data.tfds_dir, config.data.vocab_path = tfds_dir, vocab_path
  config.mesh.update(LAYOUTS[layout])
  config.model.dropout = config.model.attention_dropout = 0.1  # random bits must not depend on the layout
  devices = jax.devices()[:int(np.prod(list(LAYOUTS[layout].values())))]
  config = run.resolve(config)
  tokenizer = workdir_lib.load_tokenizer(config, workdir)
  task = pretrain.make_task(config, tokenizer)
  s = train.setup(config, task, devices)
  assert s.mesh.devices.size == len(devices), (s.mesh, layout)
  with jax.set_mesh(s.mesh):
    state = s.init(jax.random.PRNGKey(config.seed), s.extras)
    for step in range(2):
      batch = task.train_rows.batch(step, config.train.batch_size, seed=config.seed)
      state, metrics = s.train_step(state, s.extras, s.put(batch))
  return jax.device_get(state['params']), float(metrics['loss'])


def main(tfds_dir, vocab_path, workdir):
  assert len(jax.devices()) == 8, 'set XLA_FLAGS=--xla_force_host_platform_device_count=8'
  ref_params, ref_loss = two_steps(tfds_dir, vocab_path, workdir, 'single')
  for layout in list(LAYOUTS)[1:]:
    params, loss = two_steps(tfds_dir, vocab_path, workdir, layout)
    diff = max(float(np.max(np.abs(a - b))) for a, b in
               zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(ref_params)))
    print(f'LAYOUT {layout} param_diff {diff:.3g} loss_diff {abs(loss - ref_loss):.3g}',
          flush=True)


if __name__ == '__main__':
  main(*sys.argv[1:4])
