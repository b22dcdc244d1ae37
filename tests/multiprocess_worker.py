"""One process of tests/test_multiprocess.py: a few sharded train steps and one selection.

  python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT
"""

import json
import sys

import jax
import ml_collections
import numpy as np

from collapse_jax import distributed, sharding
from collapse_jax.data.pipeline import batch_at_step, make_batch_dataset
from collapse_jax.diffusion.schedule import linear_schedule
from collapse_jax.models.unet import UNet
from collapse_jax.selection import greedy_select, threshold_decay_select
from collapse_jax.train_state import make_optimizer
from collapse_jax.train_step import compiled_train_step, create_state

OPTIM = ml_collections.ConfigDict(dict(
    lr=1e-3, b1=0.95, b2=0.999, eps=1e-8, weight_decay=1e-6, warmup_steps=2, grad_clip=1.0))


def main(pid: int, nproc: int, port: int) -> None:
  config = ml_collections.ConfigDict({"distributed": dict(
      auto=False, coordinator=f"localhost:{port}" if nproc > 1 else "", num_processes=nproc,
      process_id=pid, cpu_collectives="gloo")})
  distributed.initialize(config)
  mesh = sharding.make_mesh({"data": -1, "fsdp": 2})
  model = UNet((16, 32), out_channels=1, attention_levels=(1,), norm_groups=8)
  tx = make_optimizer(OPTIM, 10)
  step = compiled_train_step(mesh, model, tx, (8, 8, 1), 0.99, 0.0)
  images = np.random.default_rng(0).uniform(-1, 1, (64, 8, 8, 1)).astype(np.float32)
  dataset = make_batch_dataset(64, 16, seed=0)
  losses = []
  with jax.set_mesh(mesh):
    state = create_state(jax.random.key(0), mesh, model, tx, (8, 8, 1), True)
    for s in range(3):
      # Each process reads only its slice of the global batch.
      batch = sharding.shard_batch(batch_at_step(dataset, {"image": images}, s), mesh)
      state, metrics = step(state, batch, jax.random.key(1), linear_schedule())
      losses.append(float(metrics["loss"]))
  pool = np.random.default_rng(1).normal(size=(203, 8)).astype(np.float32)
  greedy = greedy_select(pool, 20, start=3, mesh=mesh)
  thresh = threshold_decay_select(pool, 20, 3.0, 0.9, key=jax.random.key(2), mesh=mesh)
  print(json.dumps({"process": jax.process_index(), "devices": jax.device_count(),
                    "losses": losses, "greedy": np.asarray(greedy).tolist(),
                    "threshold": np.asarray(thresh).tolist()}))


if __name__ == "__main__":
  main(*map(int, sys.argv[1:4]))
