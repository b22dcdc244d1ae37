"""Train-step images/s and model FLOP utilisation of UNet48 (32x32x3) against diffusers.

  .venv/bin/python benchmarks/train_step.py [--batch 128] [--steps 3] [--dtype bfloat16]
      [--mesh data=-1,fsdp=1]

FLOPs per step come from XLA's cost analysis of the compiled step (forward, backward and
AdamW); utilisation is against the chip's spec-sheet peak, or on a CPU against a plain
matmul measured in the same run. diffusers' UNet2DModel with the same widths is timed in
.venv-bench (`make bench` creates it) on the same device, in the same dtype.
"""

import argparse
import os
import sys
import time

import jax
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import device_line, peak_flops, reference  # noqa: E402

from collapse_jax import sharding  # noqa: E402
from collapse_jax.diffusion.schedule import linear_schedule  # noqa: E402
from collapse_jax.diffusion.state import make_optimizer  # noqa: E402
from collapse_jax.diffusion.step import compiled_train_step, create_state  # noqa: E402
from collapse_jax.models.unet import PRESETS, UNet  # noqa: E402

# The paper's optimizer (PAPER.md).
OPTIM = ml_collections.ConfigDict(dict(
    lr=1e-4, b1=0.95, b2=0.999, eps=1e-8, weight_decay=1e-6, warmup_steps=500, grad_clip=1.0))


def parse_mesh(text: str) -> dict[str, int]:
  return {k: int(v) for k, v in (kv.split("=") for kv in text.split(","))}


def unet48(dtype: str, cpu_kernels: bool = True) -> UNet:
  """UNet48; `cpu_kernels=False`: XLA:CPU's own convolutions and GroupNorm (models/conv.py,
  models/norm.py), to measure what those kernels buy."""
  return UNet(PRESETS["unet48"], out_channels=3, layers_per_block=2, attention_levels=(4,),
              norm_groups=16, dtype=dtype, cpu_kernels=cpu_kernels)


def time_train_step(batch: int, steps: int, dtype: str, mesh_shape=None,
                    cpu_kernels: bool = True) -> dict:
  """Median step time of the jitted, sharded step, its compile time and its XLA FLOPs."""
  mesh = sharding.make_mesh(mesh_shape)
  model = unet48(dtype, cpu_kernels)
  tx = make_optimizer(OPTIM, 128_000)
  shape = (32, 32, 3)
  step = compiled_train_step(mesh, model, tx, shape, 0.0, 0.0)
  rng = np.random.default_rng(0)
  images = sharding.shard_batch(
      {"image": rng.uniform(-1, 1, (batch, *shape)).astype(np.float32)}, mesh)
  schedule = linear_schedule()
  with jax.set_mesh(mesh):
    state = create_state(jax.random.key(0), mesh, model, tx, shape, False)
    t0 = time.perf_counter()
    compiled = step.lower(state, images, jax.random.key(1), schedule).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    state, m = compiled(state, images, jax.random.key(1), schedule)  # warm-up
    jax.block_until_ready(m)
    times = []
    for _ in range(steps):
      t0 = time.perf_counter()
      state, m = compiled(state, images, jax.random.key(1), schedule)
      jax.block_until_ready(m)
      times.append(time.perf_counter() - t0)
  step_s = sorted(times)[len(times) // 2]
  # cost_analysis is per device (each runs its shard); the step's FLOPs are over all of them.
  flops = float(cost["flops"]) * mesh.size
  return {"images_per_sec": batch / step_s, "step_s": step_s, "compile_s": compile_s,
          "flops_per_step": flops, "flops_per_sec": flops / step_s,
          "params": sum(x.size for x in jax.tree.leaves(state.params))}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--mesh", default="data=-1,fsdp=1")
  parser.add_argument("--no-cpu-kernels", dest="cpu_kernels", action="store_false")
  args = parser.parse_args()
  print(device_line(), "| cpu_kernels", args.cpu_kernels)
  ours = time_train_step(args.batch, args.steps, args.dtype, parse_mesh(args.mesh),
                         args.cpu_kernels)
  peak, source = peak_flops(args.dtype)
  ref = reference("train_step", "--batch", str(args.batch), "--steps", str(args.steps),
                  "--dtype", args.dtype)
  print(f"UNet48 32x32x3 train step, batch {args.batch}, {args.dtype}, mesh {args.mesh}, "
        f"median of {args.steps} steps")
  print(f"XLA cost analysis: {ours['flops_per_step'] / 1e9:.1f} GFLOP per step "
        f"({ours['flops_per_step'] / args.batch / 1e9:.2f} GFLOP per image)")
  print(f"{'impl':<30}{'params':>12}{'img/s':>10}{'TFLOP/s':>9}{'MFU':>7}{'ratio':>8}")
  mfu = ours["flops_per_sec"] / peak
  print(f"{'collapse_jax':<30}{ours['params']:>12,}{ours['images_per_sec']:>10.1f}"
        f"{ours['flops_per_sec'] / 1e12:>9.3f}{mfu:>7.1%}{'':>8}"
        f"   compile {ours['compile_s']:.1f}s")
  if ref:
    ratio = ours["images_per_sec"] / ref["images_per_sec"]
    ref_rate = ref["images_per_sec"] * ours["flops_per_step"] / args.batch
    print(f"{'diffusers UNet2DModel':<30}{ref['params']:>12,}{ref['images_per_sec']:>10.1f}"
          f"{ref_rate / 1e12:>9.3f}{ref_rate / peak:>7.1%}{ratio:>7.2f}x")
  print(f"MFU against {peak / 1e12:.2f} TFLOP/s ({source}); the reference's MFU uses the same "
        "FLOP count per image")


if __name__ == "__main__":
  main()
