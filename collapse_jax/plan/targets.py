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

from collapse_jax.chips import CHIPS, GPU_CHIPS, TPU_CHIPS, Chip, GiB, chip_of  # noqa: F401
from collapse_jax.errors import ConfigError


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
  forms = ("tpu:<v3|v4|v5e|v5p|v6e>:<AxB or AxBxC>, gpu:<h100|h200|a100>:<hosts>x<gpus per "
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
  c = CHIPS[chip]
  n = math.prod(dims) * c.devices_per_chip  # v3: a device per TensorCore
  return Target(name, kind, c, n, max(1, n // (c.per_host * c.devices_per_chip)), shape)


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
