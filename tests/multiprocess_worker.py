"""One process of tests/test_multiprocess.py: both selections on a random pool, then one
generation of the recursive loop (train, generate, greedy select, metrics) in WORKDIR.
Every gather onto the hosts (process_allgather) is recorded by shape.

  python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT WORKDIR
"""

import json
import os
import sys

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from collapse_jax import distributed, sharding
from collapse_jax.kernels.selection import greedy_select, threshold_decay_select
from collapse_jax.loop.recursive import run_recursive

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs"))
import digits  # noqa: E402


def record_gathers() -> list:
  gathered, gather = [], multihost_utils.process_allgather

  def spy(x, tiled=False):
    gathered.append(list(np.shape(x)))
    return gather(x, tiled=tiled)

  multihost_utils.process_allgather = spy
  return gathered


def main(pid: int, nproc: int, port: int, workdir: str) -> None:
  gathered = record_gathers()
  config = digits.get_config("smoke,greedy")
  config.loop.generations = 1
  config.mesh.fsdp = 2  # (2, 2): parameters split over two devices, batch over all four
  config.distributed = ml_collections.ConfigDict(dict(
      auto=False, coordinator=f"localhost:{port}" if nproc > 1 else "", num_processes=nproc,
      process_id=pid, cpu_collectives="gloo"))
  distributed.initialize(config)
  mesh = sharding.make_mesh(config.mesh)
  pool = np.random.default_rng(1).normal(size=(203, 8)).astype(np.float32)
  greedy = greedy_select(pool, 20, start=3, mesh=mesh)
  thresh = threshold_decay_select(pool, 20, 3.0, 0.9, key=jax.random.key(2), mesh=mesh)
  rows = run_recursive(config, workdir)
  print(json.dumps({"process": jax.process_index(), "devices": jax.device_count(),
                    "greedy": np.asarray(greedy).tolist(),
                    "threshold": np.asarray(thresh).tolist(), "rows": rows,
                    "pool_size": config.loop.n_train * config.loop.pool_factor,
                    "gathered": gathered}))


if __name__ == "__main__":
  main(*map(int, sys.argv[1:4]), sys.argv[4])
