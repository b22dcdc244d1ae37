"""Ancestral DDPM sampling images/s of UNet48 (32x32x3) against diffusers, in one run.

  .venv/bin/python benchmarks/sampling.py [--batch 64] [--steps 1000] [--dtype bfloat16]

Both sides run the same number of denoising steps on the same batch: collapse_jax's jitted
`lax.fori_loop` sampler (sharded over the batch) and diffusers' UNet2DModel + DDPMScheduler
loop. Every step costs the same, so with --steps S < 1000 (for a slow CPU) the images/s
of a 1000-step sampler is measured images/s x S / 1000 and is printed as projected.
"""

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import device_line, reference  # noqa: E402
from train_step import parse_mesh, unet48  # noqa: E402

from collapse_jax import sharding  # noqa: E402
from collapse_jax.diffusion.generate import compiled_sampler  # noqa: E402
from collapse_jax.diffusion.schedule import linear_schedule  # noqa: E402


def time_sampler(batch: int, steps: int, dtype: str, mesh_shape=None,
                 cpu_kernels: bool = True) -> dict:
  """Seconds for one `steps`-step DDPM chunk of `batch` images, after compiling."""
  mesh = sharding.make_mesh(mesh_shape)
  model = unet48(dtype, cpu_kernels)
  shape = (batch, 32, 32, 3)
  params = jax.jit(lambda r: model.init(r, np.zeros((1, *shape[1:]), np.float32),
                                        np.zeros((1,), np.int32))["params"],
                   out_shardings=sharding.replicated(mesh))(jax.random.key(0))
  fn = compiled_sampler(mesh, model, shape, "ddpm", steps, 0.0, 1.0, True)
  schedule = linear_schedule(steps)
  with jax.set_mesh(mesh):
    t0 = time.perf_counter()
    compiled = fn.lower(params, jax.random.key(1), None, schedule).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(params, jax.random.key(1), None, schedule))
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(params, jax.random.key(2), None, schedule))
    seconds = time.perf_counter() - t0
  assert np.isfinite(np.asarray(out)).all()
  return {"seconds": seconds, "images_per_sec": batch / seconds, "compile_s": compile_s,
          "images_per_sec_1000": batch / seconds * steps / 1000}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--mesh", default="data=-1,fsdp=1")
  parser.add_argument("--no-cpu-kernels", dest="cpu_kernels", action="store_false")
  args = parser.parse_args()
  print(device_line(), "| cpu_kernels", args.cpu_kernels)
  ours = time_sampler(args.batch, args.steps, args.dtype, parse_mesh(args.mesh),
                      args.cpu_kernels)
  ref = reference("sample", "--batch", str(args.batch), "--steps", str(args.steps),
                  "--dtype", args.dtype)
  how = "measured" if args.steps == 1000 else f"projected from {args.steps} steps"
  print(f"UNet48 ancestral DDPM, batch {args.batch}, {args.dtype}, {args.steps} steps "
        f"(1000-step images/s {how})")
  print(f"{'impl':<30}{'s per chunk':>12}{'img/s @1000':>13}{'ratio':>8}")
  print(f"{'collapse_jax (lax.fori_loop)':<30}{ours['seconds']:>12.2f}"
        f"{ours['images_per_sec_1000']:>13.3f}{'':>8}   compile {ours['compile_s']:.1f}s")
  if ref:
    ref_1000 = ref["images_per_sec"] * args.steps / 1000
    print(f"{'diffusers UNet2DModel+DDPM':<30}{ref['seconds']:>12.2f}{ref_1000:>13.3f}"
          f"{ours['images_per_sec_1000'] / ref_1000:>7.2f}x")


if __name__ == "__main__":
  main()
