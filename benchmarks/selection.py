"""Greedy and threshold-decay selection time against a PyTorch farthest-point loop, one run.

  .venv/bin/python benchmarks/selection.py [--n 20000 --d 384 --n-select 5000]

Also reports how close greedy runs to its memory bound: one read of the pool per pick at
the streaming bandwidth measured here.
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

from collapse_jax.kernels.selection import greedy_select, threshold_decay_select  # noqa: E402


def stream_bandwidth(x: jax.Array, passes: int = 200) -> float:
  """Bytes/s of repeated matrix-vector passes over x (what each greedy pick does)."""

  @jax.jit
  def run(x):
    def body(_, v):
      return (x @ v)[: x.shape[1]] * 1e-3 + v
    return jax.lax.fori_loop(0, passes, body, jnp.ones((x.shape[1],), x.dtype))

  t, _ = median_time(lambda: run(x))
  return passes * x.size * x.dtype.itemsize / t


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--n", type=int, default=20000)
  parser.add_argument("--d", type=int, default=384)
  parser.add_argument("--n-select", type=int, default=5000)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  print(device_line())
  x = np.random.default_rng(0).normal(size=(args.n, args.d)).astype(np.float32)
  xj = jnp.asarray(x)
  t_greedy, sel = median_time(lambda: greedy_select(xj, args.n_select, start=0), args.repeats)
  t_thr, _ = median_time(lambda: threshold_decay_select(xj, args.n_select, 25.0, 0.95),
                         args.repeats)
  bw = stream_bandwidth(xj)
  bound = args.n_select * x.nbytes / bw
  with tempfile.NamedTemporaryFile(suffix=".npy") as f:
    np.save(f.name, x)
    ref = reference("fps", "--data", f.name, "--n-select", str(args.n_select),
                    "--repeats", "1") or {}
  print(f"select {args.n_select} of {args.n} at d={args.d}")
  torch_s = ref.get("torch_fps_s")
  same = ref.get("first") == np.asarray(sel[:10]).tolist() if ref else None
  print(f"{'impl':<34}{'seconds':>9}{'vs torch':>10}")
  for name, t in [("collapse_jax greedy", t_greedy), ("collapse_jax threshold decay", t_thr)]:
    ratio = f"{torch_s / t:.1f}x" if torch_s else "n/a"
    print(f"{name:<34}{t:>9.2f}{ratio:>10}")
  if torch_s:
    print(f"{'PyTorch farthest-point loop':<34}{torch_s:>9.2f}{'1.0x':>10}   same picks: {same}")
  print(f"memory bound for greedy: {bound:.2f} s ({bw / 1e9:.1f} GB/s measured); "
        f"greedy runs at {bound / t_greedy:.0%} of it")


if __name__ == "__main__":
  main()
