"""XLA:CPU defaults measured to pay for this package's programs, set before JAX starts.

jaxlib 0.10's and 0.12's XLA:CPU hand every convolution to YNNPACK, which on the UNet's
shapes is ~1.5x slower than the Eigen convolution it replaces (UNet48 train step 15.9 -> 29
images/s with it off on 0.10.2; 19.5 -> 27.5 images/s on 0.12.0.1, sampling 7.67 -> 5.83 s,
benchmarks/RESULTS.md); its dot and reduction fusions stay on. The flag only
affects the CPU backend. A flag the user already set in XLA_FLAGS wins, and
COLLAPSE_XLA_CPU_DEFAULTS=0 leaves XLA_FLAGS alone.

Per program, `encoder_compiler_options` turns YNNPACK off altogether for the feature
extractors (DINOv2, Inception), where that was measured to pay.
"""

import os

# (flag, value); applied for the jaxlib releases it was measured on, since XLA aborts on a
# flag it does not know.
CPU_DEFAULTS = (
    ("--xla_cpu_experimental_ynn_fusion_type", "-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"),
)
MEASURED_JAXLIB = ("0.10.", "0.12.")

# No YNNPACK fusions at all: Eigen dots, XLA's own reductions. On jaxlib 0.12.0.1: DINOv2
# 128 images 0.77x -> 1.02x transformers (benchmarks/RESULTS.md). Measured on DINOv2 ViT-S/14,
# 32 images, 10 alternating runs in one process (benchmarks/RESULTS.md): 2.87 -> 2.47 s
# (its wide MLP dot, 384 -> 1536, is 71 ms in YNNPACK and 62 ms in Eigen, and YNNPACK's
# reduction fusions absorb the dots after each LayerNorm); the Inception forward is
# unchanged (2.21 vs 2.22 s). Not for the UNet: the sampler (4.67 -> 4.95 s for 10 steps of
# 64 images) and the train step lose YNNPACK's GroupNorm reductions, and the kNN kernel its
# dots (1.8 vs 2.4 s at n = 10000, d = 3072). The value replaces XLA's list of fusion types.
ENCODER_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


# Programs that run once per model (parameter initialisation: threefry bits for every weight)
# compile at LLVM -O0 on the CPU. jaxlib 0.12's XLA:CPU takes 40.6 s to compile the init of a
# two-level test UNet at the default level and 8.2 s at -O0 (jaxlib 0.10.2: 13.4 s); the
# program runs once, in under a second either way, and its values agree to float rounding
# (8.9e-8 on that UNet's parameters).
ONCE_CPU_OPTIONS = {"xla_backend_optimization_level": 0}


def once_compiler_options(platform: str) -> dict | None:
  """`jax.jit(compiler_options=...)` for a program that runs once per model (its init) on
  `platform`: ONCE_CPU_OPTIONS on the CPU unless COLLAPSE_XLA_CPU_DEFAULTS=0; None elsewhere."""
  if platform != "cpu" or _opted_out():
    return None
  return dict(ONCE_CPU_OPTIONS)


# Whether XLA_FLAGS held the user's own ynn fusion types when the package was imported.
_user_ynn_types = False


def _opted_out() -> bool:
  """COLLAPSE_XLA_CPU_DEFAULTS=0: the user wants XLA's own choices everywhere."""
  return os.environ.get("COLLAPSE_XLA_CPU_DEFAULTS", "1") == "0"


def _enabled() -> bool:
  """Whether the measured defaults apply: not opted out, and a jaxlib they were measured on."""
  if _opted_out():
    return False
  try:
    from importlib.metadata import version  # noqa: PLC0415

    return version("jaxlib").startswith(MEASURED_JAXLIB)
  except Exception:  # noqa: BLE001 (no jaxlib metadata: leave the flags alone)
    return False


def encoder_compiler_options(platform: str) -> dict[str, str] | None:
  """`jax.jit(compiler_options=...)` for a feature extractor on `platform`:
  ENCODER_CPU_OPTIONS on the CPU; None on other platforms, when opted out, or when the user
  set the ynn fusion types in XLA_FLAGS themselves."""
  if platform != "cpu" or _user_ynn_types or not _enabled():
    return None
  return dict(ENCODER_CPU_OPTIONS)


def apply_cpu_defaults() -> None:
  """Appends CPU_DEFAULTS to XLA_FLAGS (read when the first backend starts)."""
  global _user_ynn_types
  flags = os.environ.get("XLA_FLAGS", "")
  _user_ynn_types = "xla_cpu_experimental_ynn_fusion_type" in flags
  if not _enabled():
    return
  extra = [f"{name}={value}" for name, value in CPU_DEFAULTS if name not in flags]
  if extra:
    os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
