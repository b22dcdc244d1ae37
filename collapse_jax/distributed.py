"""Multi-process start-up with JAX's own `jax.distributed` (no home-made layer).

Call `initialize(config)` before any other JAX use. On TPU pods and SLURM/Kubernetes GPU
clusters `jax.distributed.initialize()` finds the coordinator itself; elsewhere set
config.distributed.coordinator ('host:port'), num_processes and process_id (or the
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables).
"""

import os

import jax


def initialize(config) -> None:
  """Joins the process group described by config.distributed; a no-op for one process."""
  dc = config.distributed
  coordinator = dc.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
  num = dc.num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0"))
  if dc.cpu_collectives and jax.config.jax_platforms in (None, "", "cpu"):
    jax.config.update("jax_cpu_collectives_implementation", dc.cpu_collectives)
  if dc.auto:
    jax.distributed.initialize()
  elif coordinator and num > 1:
    pid = dc.process_id if dc.process_id >= 0 else int(os.environ["JAX_PROCESS_ID"])
    jax.distributed.initialize(coordinator, num, pid)
