"""DINOv2 ViT-S/14 feature extraction: collapse_jax (Flax) against transformers (PyTorch) on
the same preprocessed 224x224 inputs and the same (random, dinov2-small-shaped) weights.

  .venv/bin/python benchmarks/dinov2.py [--images 256 --batch 64] [--rounds 3] [--dtypes float32]

Reports images/s of each and their ratio, measured in one run, plus the largest CLS
difference (fp32) as a check that both computed the same features. With --rounds R the two
sides alternate R times (reference, then each dtype) and the ratio is the median of the R
rounds' ratios, with their range: on a shared machine one pass of each moves by ~10%.
"""

import argparse
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BENCH_PYTHON, device_line, median_time, reference  # noqa: E402

from collapse_jax.encoders.dinov2 import load_dinov2  # noqa: E402
from collapse_jax.xla_flags import encoder_compiler_options  # noqa: E402


def save_random_dinov2(path: str) -> None:
  """dinov2-small config and random weights in the HF format, written by transformers."""
  import subprocess

  code = ("import sys, torch; from transformers import Dinov2Config, Dinov2Model; "
          "torch.manual_seed(0); Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12,"
          " num_attention_heads=6, patch_size=14, image_size=518, mlp_ratio=4))"
          ".save_pretrained(sys.argv[1])")
  subprocess.run([BENCH_PYTHON, "-c", code, path], check=True, capture_output=True)


def time_flax(weights: str, x: np.ndarray, dtype: str, batch: int, repeats: int,
              cpu_kernels: bool = True):
  """(seconds, CLS features) of the jitted Flax model over `x` in batches."""
  model, params = load_dinov2(weights, getattr(jnp, dtype))
  model = model.clone(cpu_kernels=cpu_kernels)
  # The XLA options the package's extractor compiles with (collapse_jax/encoders/extract.py).
  options = encoder_compiler_options(jax.devices()[0].platform)
  fn = jax.jit(lambda p, b: model.apply({"params": p}, b)[0], compiler_options=options)
  xs = jnp.asarray(x.transpose(0, 2, 3, 1))
  return median_time(
      lambda: jnp.concatenate([fn(params, xs[i : i + batch]) for i in range(0, len(x), batch)]),
      repeats)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--images", type=int, default=256)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--no-cpu-kernels", dest="cpu_kernels", action="store_false",
                      help="jax's fused attention on the CPU too (not the per-image one)")
  args = parser.parse_args()
  print(device_line(), "| cpu_kernels", args.cpu_kernels, "| extractor options",
        encoder_compiler_options(jax.devices()[0].platform))
  dtypes = tuple(args.dtypes.split(","))
  with tempfile.TemporaryDirectory() as tmp:
    weights = os.path.join(tmp, "dinov2")
    save_random_dinov2(weights)
    x = np.random.default_rng(0).normal(size=(args.images, 3, 224, 224)).astype(np.float32)
    data = os.path.join(tmp, "x.npy")
    np.save(data, x)
    ref_s, ours_s, diff = [], {d: [] for d in dtypes}, None
    for r in range(args.rounds):
      ref = reference("dinov2", "--data", data, "--weights", weights, "--batch",
                      str(args.batch), "--repeats", str(args.repeats))
      if ref:
        ref_s.append(ref["torch_s"])
      for dtype in dtypes:
        t, out = time_flax(weights, x, dtype, args.batch, args.repeats, args.cpu_kernels)
        ours_s[dtype].append(t)
        if ref and dtype == "float32":
          diff = np.abs(np.asarray(out) - np.load(data + ".torch.npy")).max()
      if args.rounds > 1:
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            [f"transformers {args.images / ref_s[-1]:.1f}"] * bool(ref_s)
            + [f"{d} {args.images / ours_s[d][-1]:.1f}" for d in dtypes]) + " images/s",
            flush=True)
    for dtype in dtypes:
      t = float(np.median(ours_s[dtype]))
      line = f"collapse_jax {dtype}: {args.images / t:.1f} images/s ({t:.2f} s)"
      if ref_s:
        ratios = np.array(ref_s) / np.array(ours_s[dtype])
        line += (f" | transformers fp32: {args.images / np.median(ref_s):.1f} images/s"
                 f" | ratio {np.median(ratios):.2f}x")
        if args.rounds > 1:
          line += f" (rounds {ratios.min():.2f}-{ratios.max():.2f}x)"
        if dtype == "float32":
          line += f" | max |CLS diff| {diff:.1e}"
      print(line, flush=True)


if __name__ == "__main__":
  main()
