"""Train-step images/s of the UNet48 (32x32x3) against diffusers' UNet2DModel, in one run.

  .venv/bin/python benchmarks/train_step.py [--batch 128] [--steps 3] [--dtype float32]

The PyTorch side runs in .venv-bench (`make bench` creates it) as a subprocess so torch
never enters the package's environment. Prints a table with the ratio.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np

from collapse_jax import sharding
from collapse_jax.diffusion.schedule import linear_schedule
from collapse_jax.models.unet import PRESETS, UNet
from collapse_jax.train_state import make_optimizer
from collapse_jax.train_step import compiled_train_step, create_state

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_PYTHON = os.path.join(HERE, "..", ".venv-bench", "bin", "python")
OPTIM = ml_collections.ConfigDict(dict(
    lr=1e-4, b1=0.95, b2=0.999, eps=1e-8, weight_decay=1e-6, warmup_steps=500, grad_clip=1.0))


def time_jax(batch: int, steps: int, dtype: str) -> dict:
  mesh = sharding.make_mesh()
  model = UNet(PRESETS["unet48"], out_channels=3, layers_per_block=2, attention_levels=(4,),
               norm_groups=16, dtype=dtype)
  tx = make_optimizer(OPTIM, 128_000)
  shape = (32, 32, 3)
  step = compiled_train_step(mesh, model, tx, shape, 0.0, 0.0)
  rng = np.random.default_rng(0)
  batch_arr = sharding.shard_batch(
      {"image": rng.uniform(-1, 1, (batch, *shape)).astype(np.float32)}, mesh)
  schedule = linear_schedule()
  with jax.set_mesh(mesh):
    state = create_state(jax.random.key(0), mesh, model, tx, shape, False)
    t0 = time.perf_counter()
    state, m = step(state, batch_arr, jax.random.key(1), schedule)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
      t0 = time.perf_counter()
      state, m = step(state, batch_arr, jax.random.key(1), schedule)
      jax.block_until_ready(m)
      times.append(time.perf_counter() - t0)
  return {"images_per_sec": batch / sorted(times)[len(times) // 2], "compile_s": compile_s,
          "params": sum(x.size for x in jax.tree.leaves(state.params))}


def time_torch(batch: int, steps: int) -> dict | None:
  if not os.path.exists(BENCH_PYTHON):
    print(f"(no {BENCH_PYTHON}: run `make bench` to create the reference environment)")
    return None
  out = subprocess.run(
      [BENCH_PYTHON, os.path.join(HERE, "references.py"), "train_step",
       "--batch", str(batch), "--steps", str(steps)],
      check=True, capture_output=True, text=True,
  )
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}")
  ours = time_jax(args.batch, args.steps, args.dtype)
  ref = time_torch(args.batch, args.steps)
  print(f"UNet48 32x32x3 train step, batch {args.batch}, median of {args.steps} steps")
  print(f"{'impl':<28}{'params':>12}{'img/s':>10}{'ratio':>8}")
  print(f"{'collapse_jax (' + args.dtype + ')':<28}{ours['params']:>12,}"
        f"{ours['images_per_sec']:>10.1f}{'':>8}   compile {ours['compile_s']:.1f}s")
  if ref:
    ratio = ours["images_per_sec"] / ref["images_per_sec"]
    print(f"{'diffusers UNet2DModel (fp32)':<28}{ref['params']:>12,}"
          f"{ref['images_per_sec']:>10.1f}{ratio:>7.2f}x")
  sys.stdout.flush()


if __name__ == "__main__":
  main()
