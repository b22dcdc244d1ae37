"""One process of tests/test_multiprocess.py: both selections on a random pool, then the
recursive loop (train, generate, greedy select, metrics) in WORKDIR up to GENERATIONS.
Every gather onto the hosts (process_allgather) is recorded by shape.

  python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT WORKDIR GENERATIONS

Faults that make this process's view differ from the others' (environment variables):
FAULT_SLOW_CLOCK=1 runs the loop's clock 1000x slow; FAULT_RESTORE_ONCE=1 fails the first
checkpoint read (after orbax's restore returned); FAULT_SIGTERM_AT=K sends this process
SIGTERM at its K-th preemption check.
A preempted run prints its JSON line and exits 75, as the command line does.
"""

import json
import os
import signal
import sys
import time
import types

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from collapse_jax import distributed, preemption, sharding
from collapse_jax.kernels.selection import greedy_select, threshold_decay_select
from collapse_jax.loop import recursive
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


def inject_faults() -> None:
  if os.environ.get("FAULT_SLOW_CLOCK"):
    t0 = time.perf_counter()
    recursive.time = types.SimpleNamespace(
        perf_counter=lambda: t0 + (time.perf_counter() - t0) / 1000)
  if os.environ.get("FAULT_RESTORE_ONCE"):
    restore = ocp.CheckpointManager.restore

    def fail_once(self, *args, **kwargs):
      # After orbax's own restore (and its collectives) ran on every process: what reading
      # this process's rows of a torn copy raises.
      ocp.CheckpointManager.restore = restore
      restore(self, *args, **kwargs)
      raise OSError("injected: this process's copy of the checkpoint is unreadable")

    ocp.CheckpointManager.restore = fail_once
  if os.environ.get("FAULT_SIGTERM_AT"):
    at, reached, calls = int(os.environ["FAULT_SIGTERM_AT"]), preemption.reached, [0]

    def signalled():
      calls[0] += 1
      if calls[0] == at:
        os.kill(os.getpid(), signal.SIGTERM)
        # The notice reaches the coordination service and every process while the others
        # wait in this step's collectives. With 1 s here the test once hung for 600 s on the
        # loaded 2-core CI machine (suspected: a late notice, so the processes read their
        # counters at different steps and took different stop steps).
        time.sleep(5.0)
      return reached()

    preemption.reached = signalled


def main(pid: int, nproc: int, port: int, workdir: str, generations: int) -> None:
  gathered = record_gathers()
  config = digits.get_config("smoke,greedy")
  config.loop.generations = generations
  config.train.num_steps = 12  # long enough to be preempted mid-training
  config.train.checkpoint_every = config.train.log_every = 4
  config.mesh.fsdp = 2  # (2, 2): parameters split over two devices, batch over all four
  config.distributed = ml_collections.ConfigDict(dict(
      auto=False, coordinator=f"localhost:{port}" if nproc > 1 else "", num_processes=nproc,
      process_id=pid, cpu_collectives="gloo"))
  distributed.initialize(config)
  preemption.install()
  inject_faults()
  mesh = sharding.make_mesh(config.mesh)
  pool = np.random.default_rng(1).normal(size=(203, 8)).astype(np.float32)
  greedy = greedy_select(pool, 20, start=3, mesh=mesh)
  thresh = threshold_decay_select(pool, 20, 3.0, 0.9, key=jax.random.key(2), mesh=mesh)
  out = {"process": jax.process_index(), "devices": jax.device_count(),
         "greedy": np.asarray(greedy).tolist(), "threshold": np.asarray(thresh).tolist(),
         "pool_size": config.loop.n_train * config.loop.pool_factor}
  try:
    out["rows"] = run_recursive(config, workdir)
  except preemption.Preempted as e:
    print(json.dumps(out | {"preempted": e.args[0]}), flush=True)
    sys.exit(preemption.REQUEUE_EXIT)
  print(json.dumps(out | {"gathered": gathered}))


if __name__ == "__main__":
  main(*map(int, sys.argv[1:4]), sys.argv[4], int(sys.argv[5]))
