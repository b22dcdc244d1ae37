"""Multi-process start-up with JAX's own `jax.distributed` (no home-made layer).

Call `initialize(config)` before any other JAX use. On TPU pods and SLURM/Kubernetes GPU
clusters `jax.distributed.initialize()` finds the coordinator itself; elsewhere set
config.distributed.coordinator ('host:port'), num_processes and process_id (or the
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables).
"""

import os

import jax
import numpy as np
from jax.experimental import multihost_utils


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


def agree(value):
  """Process 0's `value` (a bool or a number) on every process; the value itself with one.

  Every decision that leads to a collective or changes shared files (write a checkpoint or
  skip it, which step to restore) goes through here or through `everywhere`, never through
  a host's own clock or its own view of the disk."""
  if jax.process_count() == 1:
    return value
  return type(value)(multihost_utils.broadcast_one_to_all(np.asarray(value)).item())


def everywhere(flag: bool) -> bool:
  """True on every process iff `flag` is true on every process."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.all(multihost_utils.process_allgather(np.asarray(bool(flag)))))


def anywhere(flag: bool) -> bool:
  """True on every process iff `flag` is true on some process."""
  return not everywhere(not flag)


def agree_ints(values: list[int]) -> list[int]:
  """Process 0's list of ints on every process (e.g. the checkpoint steps it sees)."""
  if jax.process_count() == 1:
    return list(values)
  n = agree(len(values))
  mine = np.full(n, -1, np.int64)
  mine[:min(n, len(values))] = values[:n]
  return [int(v) for v in multihost_utils.broadcast_one_to_all(mine)]
