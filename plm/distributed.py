"""Multi-process start-up: one JAX process per host (or per GPU), joined before any JAX work.

A run is multi-process when `config.distributed` or the environment names a
coordinator; each process then sees every device in `jax.devices()`, reads only
its own slice of each batch (plm.data.pipeline) and hands it to
`jax.make_array_from_process_local_data` (plm.train `put`). Orbax writes one
checkpoint from all processes together.

  # two processes on one machine (or two hosts: use host 0's address)
  JAX_COORDINATOR_ADDRESS=localhost:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 python -m plm.main ...
  JAX_COORDINATOR_ADDRESS=localhost:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1 python -m plm.main ...
  # Cloud TPU pods, SLURM, Open MPI: the cluster says who is who
  python -m plm.main ... --config.distributed.auto=True

On CPU, cross-process collectives go through gloo (jax's default
`jax_cpu_collectives_implementation`).
"""
import os

import jax

from plm.errors import UserError

ENV = {'coordinator_address': 'JAX_COORDINATOR_ADDRESS', 'num_processes': 'JAX_NUM_PROCESSES',
       'process_id': 'JAX_PROCESS_ID'}


def settings(dc) -> dict:
  """coordinator_address / num_processes / process_id from the config, else the environment.

  Unset values are None; config fields win over environment variables.
  """
  out = {}
  for field, var in ENV.items():
    value = dc.get(field) if dc is not None else None
    unset = {'coordinator_address': '', 'num_processes': 0, 'process_id': -1}[field]
    if value is None or value == unset:
      value = os.environ.get(var) or None
    if value is not None and field != 'coordinator_address':
      try:
        value = int(value)
      except ValueError as e:
        raise UserError(f'{var}={value!r} is not an integer; set it (or '
                        f'config.distributed.{field}) to a number') from e
    out[field] = value
  return out


def initialize(dc) -> bool:
  """Joins the run's processes (jax.distributed.initialize); False when single-process."""
  if dc is not None and dc.get('auto'):
    jax.distributed.initialize()  # TPU pod / SLURM / Open MPI detect everything
    return True
  s = settings(dc)
  if all(v is None for v in s.values()):
    return False
  missing = [f'config.distributed.{k} (or {ENV[k]})' for k, v in s.items() if v is None]
  if missing:
    raise UserError(f'a multi-process run needs all of coordinator_address, num_processes and '
                    f'process_id; missing {", ".join(missing)}')
  if not 0 <= s['process_id'] < s['num_processes']:
    raise UserError(f"process_id={s['process_id']} must be in 0..num_processes-1 "
                    f"(num_processes={s['num_processes']}); number the processes 0, 1, ...")
  jax.distributed.initialize(**s)
  return True
