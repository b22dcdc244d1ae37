"""The collapse time's cost against the KL entropy's on the same set (the two per-generation
measures of a training set), measured in the same run: seconds of each after a warm-up call
and their ratio.

  .venv/bin/python benchmarks/collapse_time.py [--n 2048] [--d 784] [--queries 1000]

t_C is two passes of kernels/excess.py (32 times each) over queries x training rows; the
KL entropy one kNN search of the set against itself (kernels/knn.py, half the tiles).
"""

import argparse
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import device_line, median_time  # noqa: E402

from collapse_jax.diffusion.schedule import linear_schedule  # noqa: E402
from collapse_jax.kernels.entropy import kl_entropy  # noqa: E402
from collapse_jax.metrics.collapse_time import collapse_time  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=2048)
  parser.add_argument("--d", type=int, default=784)
  parser.add_argument("--queries", type=int, default=1000)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  print(device_line())
  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (args.n, args.d)).astype(np.uint8)
  held = rng.integers(0, 256, (args.queries, args.d)).astype(np.uint8)
  alphas = np.asarray(linear_schedule(1000).alphas_cumprod)
  key = jax.random.key(0)
  t_c, _ = median_time(lambda: collapse_time(train, held, alphas, key, scale=1 / 127.5,
                                              shift=-1.0).t, args.rounds)
  t_h, _ = median_time(lambda: kl_entropy(train, 1), args.rounds)
  print(f"N={args.n} d={args.d} queries={args.queries}: collapse time {t_c:.3f} s, "
        f"KL entropy {t_h:.3f} s, ratio {t_c / t_h:.2f}x")


if __name__ == "__main__":
  main()
