"""KL-entropy kernel time against scikit-learn and faiss-cpu on the same inputs, in one run.

  .venv/bin/python benchmarks/entropy_kernel.py [--shapes 10000x384,20000x384,10000x3072]

Also reports the kernel's FLOP/s (the useful n^2 d multiply-adds of the upper triangle of the
distance matrix, 2 FLOP each, halved by symmetry) and that rate as a fraction of a plain
matmul's, measured in the same run.
"""

import argparse
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import device_line, median_time, reference  # noqa: E402

from collapse_jax.kernels.entropy import kl_entropy, kth_neighbor_distance  # noqa: E402


def matmul_rate(d: int, n: int = 8192) -> float:
  """FLOP/s of an (n x d) @ (d x n) float32 matmul on this device."""
  a = jax.random.normal(jax.random.key(0), (n, d))
  f = jax.jit(lambda a: a @ a.T)
  t, _ = median_time(lambda: f(a))
  return 2 * n * n * d / t


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--shapes", default="10000x384,20000x384,10000x3072")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  print(device_line())
  rows = []
  for shape in args.shapes.split(","):
    n, d = map(int, shape.split("x"))
    x = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    xj = jnp.asarray(x)
    t_ours, _ = median_time(lambda xj=xj: kth_neighbor_distance(xj), args.repeats)
    h_ours = kl_entropy(x)
    with tempfile.NamedTemporaryFile(suffix=".npy") as f:
      np.save(f.name, x)
      ref = reference("entropy", "--data", f.name, "--repeats", str(args.repeats)) or {}
    # The kernel does the upper triangle only: n^2 d useful multiply-adds = n^2 d FLOP x2 / 2.
    flops = n * n * d
    rows.append((n, d, t_ours, h_ours, ref, flops / t_ours, matmul_rate(d)))
  print(f"{'n':>6} {'d':>5} {'ours s':>8} {'sklearn s':>10} {'faiss s':>8} "
        f"{'vs sklearn':>10} {'vs faiss':>9} {'|dH|':>8} {'GFLOP/s':>8} {'kernel/matmul':>14}")
  for n, d, t, h, ref, rate, mm in rows:
    sk, fa = ref.get("sklearn_s"), ref.get("faiss_s")
    fmt = lambda v: f"{v:.3f}" if v else "n/a"
    ratio = lambda v, t=t: f"{v / t:.2f}x" if v else "n/a"
    dh = abs(h - ref["sklearn_H"]) if "sklearn_H" in ref else float("nan")
    print(f"{n:>6} {d:>5} {t:>8.3f} {fmt(sk):>10} {fmt(fa):>8} {ratio(sk):>10} "
          f"{ratio(fa):>9} {dh:>8.1e} {rate / 1e9:>8.1f} {rate / mm:>13.0%}")


if __name__ == "__main__":
  main()
