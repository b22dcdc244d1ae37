"""Shared benchmark helpers: median timing and calling the reference environment."""

import json
import os
import subprocess
import time

import jax

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_PYTHON = os.path.join(HERE, "..", ".venv-bench", "bin", "python")


def median_time(fn, repeats: int = 3) -> tuple[float, object]:
  """Median wall time of `fn()` (outputs blocked on) after one warm-up/compile call."""
  out = jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return sorted(times)[len(times) // 2], out


def reference(*args: str) -> dict | None:
  """Runs benchmarks/references.py in .venv-bench; None (with a hint) if it is missing."""
  if not os.path.exists(BENCH_PYTHON):
    print(f"(no {BENCH_PYTHON}: `make bench` creates the reference environment)")
    return None
  out = subprocess.run([BENCH_PYTHON, os.path.join(HERE, "references.py"), *args],
                       check=True, capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def device_line() -> str:
  return f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}"
