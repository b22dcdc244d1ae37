"""One generation of the paper's CIFAR-10 setting, projected from parts measured in one run.

  .venv/bin/python benchmarks/generation.py [--dtype bfloat16] [--sample-steps 1000]

The setting (PAPER.md): train UNet48 for 128k steps at batch 128, sample a pool of 2N =
65,536 images with 1000-step DDPM, embed it with DINOv2 ViT-S/14, greedily select N = 32,768
and measure entropies. Each part is timed here at a size this device runs in seconds and
scaled by its cost model (steps, images, or N x |S| distance evaluations for greedy, n^2 for
the kNN); the PyTorch reference parts (diffusers, transformers, sklearn, a torch
farthest-point loop) are timed in the same run on the same device and scaled the same way.
"""

import argparse
import os
import sys
import tempfile

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import device_line, median_time, reference  # noqa: E402
from dinov2 import save_random_dinov2, time_flax  # noqa: E402
from sampling import time_sampler  # noqa: E402
from train_step import time_train_step  # noqa: E402

from collapse_jax.kernels.entropy import kth_neighbor_distance  # noqa: E402
from collapse_jax.kernels.selection import greedy_select  # noqa: E402

PAPER = dict(train_steps=128_000, batch=128, pool=65_536, select=32_768, dim=384)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--train-steps", type=int, default=3, help="steps timed")
  parser.add_argument("--sample-batch", type=int, default=64)
  parser.add_argument("--sample-steps", type=int, default=10, help="DDPM steps timed")
  parser.add_argument("--embed-images", type=int, default=64)
  parser.add_argument("--pool", type=int, default=16_384, help="pool size timed for selection")
  parser.add_argument("--select", type=int, default=2_048, help="picks timed")
  args = parser.parse_args()
  print(device_line())
  p, dt = PAPER, args.dtype
  rows = []  # (part, what the projection multiplies, ours s, reference s)

  train = time_train_step(p["batch"], args.train_steps, dt)
  ref = reference("train_step", "--batch", str(p["batch"]), "--steps", str(args.train_steps),
                  "--dtype", dt)
  per_step = lambda r: p["batch"] / r["images_per_sec"]
  rows.append((f"train {p['train_steps']:,} steps x {p['batch']}", p["train_steps"],
               per_step(train), ref and per_step(ref)))

  sample = time_sampler(args.sample_batch, args.sample_steps, dt)
  ref = reference("sample", "--batch", str(args.sample_batch), "--steps",
                  str(args.sample_steps), "--dtype", dt)
  per_image = lambda r: 1000 / args.sample_steps / r["images_per_sec"]
  rows.append((f"sample {p['pool']:,} (DDPM 1000)", p["pool"], per_image(sample),
               ref and per_image(ref)))

  with tempfile.TemporaryDirectory() as tmp:
    weights = os.path.join(tmp, "dinov2")
    ref = None
    try:
      save_random_dinov2(weights)
    except OSError:
      weights = ""
    if weights:
      x = np.random.default_rng(0).normal(size=(args.embed_images, 3, 224, 224))
      x = x.astype(np.float32)
      data = os.path.join(tmp, "x.npy")
      np.save(data, x)
      t, _ = time_flax(weights, x, dt, 32, 1)
      ref = reference("dinov2", "--data", data, "--weights", weights, "--batch", "32",
                      "--repeats", "1")
      rows.append((f"embed {p['pool']:,} (DINOv2 S/14)", p["pool"], t / args.embed_images,
                   ref and ref["torch_s"] / args.embed_images))

  feats = np.random.default_rng(1).normal(size=(args.pool, p["dim"])).astype(np.float32)
  xj = jnp.asarray(feats)
  t_greedy, _ = median_time(lambda: greedy_select(xj, args.select, start=0), 1)
  t_knn, _ = median_time(lambda: kth_neighbor_distance(xj), 1)
  with tempfile.NamedTemporaryFile(suffix=".npy") as f:
    np.save(f.name, feats)
    fps = reference("fps", "--data", f.name, "--n-select", str(args.select), "--repeats", "1")
    knn = reference("entropy", "--data", f.name, "--repeats", "1")
  pairs = args.pool * args.select
  rows.append((f"greedy {p['select']:,} of {p['pool']:,}", p["pool"] * p["select"],
               t_greedy / pairs, fps and fps["torch_fps_s"] / pairs))
  n2 = args.pool**2
  rows.append(("kNN entropy of pool + selected", p["pool"] ** 2 + p["select"] ** 2,
               t_knn / n2, knn and knn["sklearn_s"] / n2))

  print(f"one generation of the paper's CIFAR-10 setting, {dt}, projected")
  print(f"{'part':<36}{'collapse_jax h':>15}{'reference h':>13}{'ratio':>8}")
  total_ours = total_ref = 0.0
  for name, count, ours, theirs in rows:
    total_ours += count * ours
    line = f"{name:<36}{count * ours / 3600:>15.2f}"
    if theirs:
      total_ref += count * theirs
      line += f"{count * theirs / 3600:>13.2f}{theirs / ours:>7.2f}x"
    print(line)
  ratio = f"{total_ref / total_ours:>7.2f}x" if total_ref else ""
  print(f"{'total':<36}{total_ours / 3600:>15.2f}{total_ref / 3600 if total_ref else 0:>13.2f}"
        f"{ratio}")
  print("references: diffusers UNet2DModel (train, DDPM), transformers Dinov2Model, torch "
        "farthest-point loop, sklearn NearestNeighbors")


if __name__ == "__main__":
  main()
