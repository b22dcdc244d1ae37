"""XLA:CPU defaults measured to pay for this package's programs, set before JAX starts.

jaxlib 0.10's XLA:CPU hands every convolution to YNNPACK, which on the UNet's shapes is
~1.5x slower than the Eigen convolution it replaces (UNet48 train step 15.9 -> 29 images/s
with it off, benchmarks/RESULTS.md); its dot and reduction fusions stay on. The flag only
affects the CPU backend. A flag the user already set in XLA_FLAGS wins, and
COLLAPSE_XLA_CPU_DEFAULTS=0 leaves XLA_FLAGS alone.
"""

import os

# (flag, value); applied for the jaxlib releases it was measured on, since XLA aborts on a
# flag it does not know.
CPU_DEFAULTS = (
    ("--xla_cpu_experimental_ynn_fusion_type", "-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"),
)
MEASURED_JAXLIB = ("0.10.",)


def apply_cpu_defaults() -> None:
  """Appends CPU_DEFAULTS to XLA_FLAGS (read when the first backend starts)."""
  if os.environ.get("COLLAPSE_XLA_CPU_DEFAULTS", "1") == "0":
    return
  try:
    from importlib.metadata import version  # noqa: PLC0415

    if not version("jaxlib").startswith(MEASURED_JAXLIB):
      return
  except Exception:  # noqa: BLE001 (no jaxlib metadata: leave the flags alone)
    return
  flags = os.environ.get("XLA_FLAGS", "")
  extra = [f"{name}={value}" for name, value in CPU_DEFAULTS if name not in flags]
  if extra:
    os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
