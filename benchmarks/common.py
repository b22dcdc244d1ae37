"""Shared benchmark helpers: median timing and calling the reference environment."""

import json
import os
import subprocess
import time

import jax
import jax.numpy as jnp

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


# Dense bf16 peak FLOP/s per chip (vendor figures, no sparsity), for model FLOP utilisation.
PEAK_BF16 = {
    "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12,
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
}


def matmul_rate(n: int = 4096, dtype=jnp.float32) -> float:
  """FLOP/s of a plain (n x n) @ (n x n) matmul on this device, measured now."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda a: a @ a)
  t, _ = median_time(lambda: f(a))
  return 2 * n**3 / t


def peak_flops(dtype: str) -> tuple[float, str]:
  """The device's peak FLOP/s and where it came from: the vendor table, else a measured matmul.

  On a CPU there is no meaningful vendor peak, so utilisation is against the best matmul
  rate XLA reaches on it in the same run.
  """
  kind = jax.devices()[0].device_kind
  for name, peak in PEAK_BF16.items():
    if name.lower() in kind.lower():
      factor = 1.0 if dtype == "bfloat16" else 0.5  # TF32 tensor cores: half the bf16 rate
      return peak * factor * jax.local_device_count(), f"{kind} spec sheet"
  rate = matmul_rate(dtype=jnp.bfloat16 if dtype == "bfloat16" else jnp.float32)
  return rate * jax.local_device_count(), "measured 4096^3 matmul"
