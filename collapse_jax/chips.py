"""Accelerator chips' published peaks as data, and the peak FLOP/s of the devices a run got
(for its MFU): plan/targets.py builds its targets on the same table.

On a CPU the peak is measured: a float32 matmul on this host, shared by its devices.
"""

import dataclasses
import functools
import time

GiB = 2**30


@dataclasses.dataclass(frozen=True)
class Chip:
  """One chip's published peaks: bf16 dense FLOP/s, HBM bytes and bytes/s, and the
  one-direction bandwidth of its links (within a slice / NVLink, and between hosts)."""

  name: str
  peak_flops: float
  hbm_bytes: float
  hbm_bw: float
  link_bw: float
  host_link_bw: float
  per_host: int
  source: str
  # GPUs: what XLA's target config needs besides the above.
  sm_count: int = 0
  compute_capability: tuple[int, int] = (0, 0)
  clock_ghz: float = 0.0
  l2_bytes: int = 0
  # JAX devices per chip: 2 on TPU v2/v3 (each TensorCore is a device), else 1. The peaks
  # above are per chip; one device has its share.
  devices_per_chip: int = 1


TPU_DOCS = "Cloud TPU system architecture pages (docs.cloud.google.com/tpu/docs/<version>)"
CHIPS = {
    # v3: two TensorCores per chip, each a JAX device. The page gives no ICI bandwidth per
    # chip; its all-reduce bandwidth per 1024-chip pod (340 TB/s) is 332 GB/s per chip,
    # taken here as the two directions together.
    "v3": Chip("TPU v3", 123e12, 32 * GiB, 900e9, 166e9, 166e9, 4,
               f"{TPU_DOCS}: 123 TFLOP/s bf16 per chip (2 TensorCores), 32 GiB HBM2 at "
               "900 GB/s; all-reduce 340 TB/s per 1024-chip pod", devices_per_chip=2),
    # ICI: the pages give per-chip bidirectional bandwidth; one direction is half of it.
    "v4": Chip("TPU v4", 275e12, 32 * GiB, 1200e9, 300e9, 300e9, 4,
               f"{TPU_DOCS}: 275 TFLOP/s bf16, 32 GiB HBM2 at 1200 GB/s, ICI 2400 Gbps"),
    "v5e": Chip("TPU v5e", 197e12, 16 * GiB, 819e9, 200e9, 200e9, 8,
                f"{TPU_DOCS}: 197 TFLOP/s bf16, 16 GB HBM2 at 819 GB/s, ICI 400 GB/s "
                "bidirectional (1600 Gbps)"),
    "v5p": Chip("TPU v5p", 459e12, 95 * GiB, 2765e9, 600e9, 600e9, 4,
                f"{TPU_DOCS}: 459 TFLOP/s bf16, 95 GB HBM2e at 2765 GB/s, ICI 4800 Gbps"),
    "v6e": Chip("TPU v6e", 918e12, 32 * GiB, 1638e9, 400e9, 400e9, 8,
                f"{TPU_DOCS}: 918 TFLOP/s bf16, 32 GB HBM at 1638 GB/s, ICI 800 GB/s "
                "bidirectional"),
    # NVLink 4: 900 GB/s bidirectional per GPU; between hosts one 400 Gb/s NIC per GPU
    # (DGX/HGX H100 and H200 systems).
    "h100": Chip("NVIDIA H100 80GB HBM3", 989e12, 80 * GiB, 3.35e12, 450e9, 50e9, 8,
                 "NVIDIA H100 datasheet (SXM5): 989 TFLOP/s bf16 dense, 80 GB HBM3 at "
                 "3.35 TB/s, NVLink 900 GB/s, 132 SMs at 1.98 GHz; DGX H100: 400 Gb/s NIC "
                 "per GPU", 132, (9, 0), 1.98, 50 * 2**20),
    "h200": Chip("NVIDIA H200", 989e12, 141e9, 4.8e12, 450e9, 50e9, 8,
                 "NVIDIA H200 datasheet (SXM): 989 TFLOP/s bf16 dense, 141 GB HBM3e at "
                 "4.8 TB/s, NVLink 900 GB/s, 132 SMs; HGX H200: 400 Gb/s NIC per GPU",
                 132, (9, 0), 1.98, 50 * 2**20),
    "a100": Chip("NVIDIA A100-SXM4-80GB", 312e12, 80 * GiB, 2.039e12, 300e9, 25e9, 8,
                 "NVIDIA A100 datasheet (SXM4 80GB): 312 TFLOP/s bf16 dense, 2039 GB/s, "
                 "NVLink 600 GB/s, 108 SMs at 1.41 GHz; DGX A100: 200 Gb/s NIC per GPU",
                 108, (8, 0), 1.41, 40 * 2**20),
}
TPU_CHIPS = ("v3", "v4", "v5e", "v5p", "v6e")
GPU_CHIPS = ("h100", "h200", "a100")


# device_kind strings of real devices -> chips (a `local` target's peaks).
DEVICE_KINDS = {"TPU v3": "v3", "TPU v4": "v4", "TPU v5 lite": "v5e", "TPU v5e": "v5e",
                "TPU v5": "v5p",
                "TPU v5p": "v5p", "TPU v6 lite": "v6e", "TPU v6e": "v6e",
                "NVIDIA H100": "h100", "NVIDIA H200": "h200", "NVIDIA A100": "a100"}


def chip_of(device_kind: str) -> Chip | None:
  """The chip whose device_kind starts with a known name (longest first), else None."""
  for prefix in sorted(DEVICE_KINDS, key=len, reverse=True):
    if device_kind.startswith(prefix):
      return CHIPS[DEVICE_KINDS[prefix]]
  return None


def rate(f, x, work: float, seconds: float) -> float:
  """`work` per second of f(x), timed for about `seconds` after one warm-up call."""
  f(x).block_until_ready()
  reps, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < seconds:
    f(x).block_until_ready()
    reps += 1
  return work * reps / (time.perf_counter() - t0)


def measured_flops(seconds: float = 1.0) -> float:
  """FLOP/s of a float32 1024^3 matmul on this host's default device."""
  import jax
  import jax.numpy as jnp

  n = 1024
  return rate(jax.jit(lambda a: a @ a), jnp.ones((n, n), jnp.float32), 2.0 * n**3, seconds)


@functools.cache
def device_peak(device_kind: str, platform: str, local_devices: int) -> tuple[float, str]:
  """(peak FLOP/s of one device, where it comes from); (0, why) for an unknown chip. CPU
  devices share the host's measured matmul rate."""
  if platform == "cpu":
    flops = measured_flops(seconds=0.2)
    return flops / local_devices, (f"a float32 matmul measured on this host at "
                                   f"{flops / 1e9:.0f} GFLOP/s, shared by its {local_devices} "
                                   "device(s)")
  chip = chip_of(device_kind)
  if chip is None:
    return 0.0, f"no published peak for {device_kind!r} in collapse_jax/chips.py"
  return chip.peak_flops / chip.devices_per_chip, f"{chip.name}'s published bf16 peak"
