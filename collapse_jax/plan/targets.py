"""Accelerator targets by name, their published peaks as data, and compile-only devices.

A target is `tpu:<chip>:<topology>` (`tpu:v5e:4x4`, `tpu:v5p:2x2x2`), `gpu:<chip>:<hosts>x<gpus>`
(`gpu:h100:1x8`, `gpu:h200:2x8`), `cpu` (this host's CPU devices) or `local` (the devices of
the default backend, e.g. a lent GPU). TPU and GPU devices come from
`jax.experimental.topologies`: XLA's compilers for them run on this host, no chip needed
(libtpu, the CUDA plugin and nvcc must be installed: `make aot-setup`).
"""

import dataclasses
import math
import os
import re

import jax

from collapse_jax.errors import ConfigError

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


TPU_DOCS = "Cloud TPU system architecture pages (docs.cloud.google.com/tpu/docs/<version>)"
CHIPS = {
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
TPU_CHIPS = ("v4", "v5e", "v5p", "v6e")
GPU_CHIPS = ("h100", "h200", "a100")


@dataclasses.dataclass(frozen=True)
class Target:
  """A named target: its kind ('tpu', 'gpu', 'cpu', 'local'), chip, devices and hosts."""

  name: str
  kind: str
  chip: Chip | None
  num_devices: int
  hosts: int
  topology: str = ""

  @property
  def per_host(self) -> int:
    return self.num_devices // self.hosts


def parse(name: str) -> Target:
  """A `Target` from its name, or a ConfigError listing the valid forms."""
  forms = ("tpu:<v4|v5e|v5p|v6e>:<AxB or AxBxC>, gpu:<h100|h200|a100>:<hosts>x<gpus per "
           "host>, cpu, local")
  if name in ("cpu", "local"):
    devices = jax.devices("cpu") if name == "cpu" else jax.devices()
    chip = chip_of(devices[0].device_kind) if name == "local" else None
    return Target(name, name, chip, len(devices), jax.process_count())
  m = re.fullmatch(r"(tpu|gpu):([a-z0-9]+):(\d+(?:x\d+){1,2})", name)
  if not m:
    raise ConfigError(f"--target={name!r}; use one of: {forms}.")
  kind, chip, shape = m.groups()
  if chip not in (TPU_CHIPS if kind == "tpu" else GPU_CHIPS):
    raise ConfigError(f"--target={name!r}: no {kind} chip {chip!r}; use one of: {forms}.")
  dims = [int(d) for d in shape.split("x")]
  if kind == "gpu":
    if len(dims) != 2 or not 1 <= dims[1] <= 8:
      raise ConfigError(f"--target={name!r}: a GPU target is <hosts>x<gpus per host (1-8)>.")
    return Target(name, kind, CHIPS[chip], dims[0] * dims[1], dims[0], shape)
  want = 3 if chip in ("v4", "v5p") else 2
  if len(dims) != want:
    raise ConfigError(f"--target={name!r}: {chip} slices are {'AxBxC' if want == 3 else 'AxB'}.")
  n = math.prod(dims)
  return Target(name, kind, CHIPS[chip], n, max(1, n // CHIPS[chip].per_host), shape)


# device_kind strings of real devices -> chips (a `local` target's peaks).
DEVICE_KINDS = {"TPU v4": "v4", "TPU v5 lite": "v5e", "TPU v5e": "v5e", "TPU v5": "v5p",
                "TPU v5p": "v5p", "TPU v6 lite": "v6e", "TPU v6e": "v6e",
                "NVIDIA H100": "h100", "NVIDIA H200": "h200", "NVIDIA A100": "a100"}


def chip_of(device_kind: str) -> Chip | None:
  """The chip whose device_kind starts with a known name (longest first), else None."""
  for prefix in sorted(DEVICE_KINDS, key=len, reverse=True):
    if device_kind.startswith(prefix):
      return CHIPS[DEVICE_KINDS[prefix]]
  return None


def gpu_target_config(chip: Chip) -> str:
  """The text proto of XLA's GpuTargetConfig for `chip`: what the CUDA compiler needs to
  compile for it without one (its published numbers; no device is queried)."""
  major, minor = chip.compute_capability
  return f"""gpu_device_info {{
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_block_optin: 232448
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: {chip.sm_count}
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: {int(chip.hbm_bw)}
  l2_cache_size: {chip.l2_bytes}
  clock_rate_ghz: {chip.clock_ghz}
  device_memory_size: {int(chip.hbm_bytes)}
  cuda_compute_capability {{ major: {major} minor: {minor} }}
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}}
platform_name: "CUDA"
dnn_version_info {{ major: 9 minor: 8 patch: 0 }}
device_description_str: "{chip.name}"
"""


def devices(target: Target) -> list:
  """The target's devices: compile-only ones for tpu/gpu (nothing runs on them)."""
  if target.kind in ("cpu", "local"):
    return jax.devices("cpu") if target.kind == "cpu" else jax.devices()
  from jax.experimental import topologies

  # Compile-only: no chip is opened, so plans may run side by side (libtpu otherwise holds
  # a lock file for the one process that may use the chips).
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  try:
    if target.kind == "tpu":
      chip = next(k for k in TPU_CHIPS if CHIPS[k] is target.chip)
      topo = topologies.get_topology_desc(topology_name=f"{chip}:{target.topology}",
                                          platform="tpu")
    else:
      topo = topologies.get_topology_desc(
          platform="cuda", target_config=gpu_target_config(target.chip),
          topology=f"1x{target.hosts}x{target.per_host}")
  except (RuntimeError, NotImplementedError, ValueError) as e:
    raise ConfigError(f"--target={target.name}: XLA's {target.kind} compiler is not available "
                      f"here ({str(e).splitlines()[0][:160]}); run `make aot-setup` and use "
                      ".venv-aot/bin/python.") from e
  return list(topo.devices)
