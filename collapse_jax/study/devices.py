"""Which devices each concurrent job of a launcher gets on one host: a pure plan.

JAX in one process takes every accelerator it sees (and on a GPU preallocates 75% of each
one's memory; on a TPU VM a second process cannot open the chips), so several jobs on one
host need disjoint device sets, given before the child imports JAX:

- GPUs: CUDA_VISIBLE_DEVICES.
- A TPU VM: the chip variables for non-communicating processes on one VM
  (TPU_CHIPS_PER_PROCESS_BOUNDS, TPU_PROCESS_BOUNDS=1,1,1, TPU_VISIBLE_CHIPS, and a mesh
  controller port of its own).
- CPU with forced fake devices (--xla_force_host_platform_device_count): COLLAPSE_DEVICES,
  the ids of this process's devices its mesh may use (collapse_jax/platform.py).
- A plain CPU host: no devices to split; the launchers keep their core shares.

How many jobs run at once follows from the device count and the config's mesh: a job gets
the largest power-of-two number of devices (a multiple of its fixed mesh axes, dividing its
batch) that lets `jobs` of them run side by side; when even the smallest set does not fit
twice, the jobs run one after another on every device.
"""

import dataclasses
import math
import os
import re
import shutil
import subprocess

# Chip bounds of one process for 1, 2, 4 and 8 chips of a TPU VM (the layout JAX's
# multi-process-per-VM recipe uses: a 2x2 host splits into 1x2 halves, a 2x4 host likewise).
TPU_BOUNDS = {1: "1,1,1", 2: "1,2,1", 4: "2,2,1", 8: "2,4,1"}
TPU_PORT = 8476


@dataclasses.dataclass(frozen=True)
class Host:
  """What a launcher found: `platform` 'gpu', 'tpu' or 'cpu'; `devices` to split (0 on a
  plain CPU host); `ids` their names for the visibility variable (GPU ids may be a
  CUDA_VISIBLE_DEVICES subset already)."""

  platform: str
  devices: int
  ids: tuple[str, ...] = ()

  def __post_init__(self):
    if not self.ids:
      object.__setattr__(self, "ids", tuple(str(i) for i in range(self.devices)))


@dataclasses.dataclass(frozen=True)
class Need:
  """What one job's config asks of its devices: a multiple of `fixed` (its mesh axes other
  than -1), exactly `fixed` when no axis is -1, and a count dividing `batch`."""

  fixed: int = 1
  flexible: bool = True
  batch: int = 0


@dataclasses.dataclass(frozen=True)
class Slot:
  """One place a job runs: its devices and the environment that makes the child see them."""

  devices: tuple[str, ...]
  env: dict

  def describe(self) -> str:
    return " ".join(f"{k}={v}" for k, v in self.env.items()) or "every device"


def need_of(config) -> Need:
  """The device need of a config's mesh and train batch."""
  sizes = [int(v) for v in dict(config.mesh).values()]
  return Need(math.prod(s for s in sizes if s != -1), -1 in sizes,
              int(config.train.batch_size))


def _fits(count: int, need: Need) -> bool:
  return count % need.fixed == 0 and (not need.batch or need.batch % count == 0)


def devices_per_job(host: Host, jobs: int, need: Need) -> int:
  """Devices each job gets so that as many as possible (at most `jobs`) run at once."""
  if need.fixed > host.devices:
    raise ValueError(f"a job's mesh needs {need.fixed} devices; this {host.platform} host has "
                     f"{host.devices}.")
  if not need.flexible:
    return need.fixed
  share = max(1, host.devices // max(1, jobs))
  counts = [2**k for k in range(int(math.log2(host.devices)) + 1)]
  if host.platform == "tpu":
    counts = [c for c in counts if c in TPU_BOUNDS]
  fitting = [c for c in counts if _fits(c, need)]
  if not fitting:
    raise ValueError(f"no set of {counts} devices suits the mesh (a multiple of {need.fixed}) "
                     f"and batch {need.batch}.")
  small = [c for c in fitting if c <= share]
  if small and host.devices // small[-1] >= 2:
    return small[-1]
  # The jobs do not run side by side: one after another, each on the most devices.
  return max(c for c in fitting if c <= host.devices)


def _env(host: Host, index: int, ids: tuple[str, ...]) -> dict:
  if host.platform == "gpu":
    return {"CUDA_VISIBLE_DEVICES": ",".join(ids)}
  if host.platform == "tpu":
    port = TPU_PORT + index
    return {"TPU_CHIPS_PER_PROCESS_BOUNDS": TPU_BOUNDS[len(ids)], "TPU_PROCESS_BOUNDS": "1,1,1",
            "TPU_VISIBLE_CHIPS": ",".join(ids), "TPU_VISIBLE_DEVICES": ",".join(ids),
            "TPU_MESH_CONTROLLER_ADDRESS": f"localhost:{port}",
            "TPU_MESH_CONTROLLER_PORT": str(port), "TPU_PROCESS_PORT": str(port)}
  return {"COLLAPSE_DEVICES": ",".join(ids)}


def plan(host: Host, jobs: int, need: Need = Need()) -> list[Slot]:
  """The slots jobs run in (as many as run at once). A plain CPU host gives [] (the
  launcher's own core shares apply); one slot holding every device means one at a time."""
  if host.devices == 0 or jobs == 0:
    return []
  per = devices_per_job(host, jobs, need)
  if per == host.devices:
    return [Slot(host.ids, {})]  # one job at a time sees everything, as without a launcher
  slots = min(jobs, host.devices // per)
  return [Slot(host.ids[i * per:(i + 1) * per], _env(host, i, host.ids[i * per:(i + 1) * per]))
          for i in range(slots)]


def _forced_cpu_devices(xla_flags: str) -> int:
  m = re.search(r"--xla_force_host_platform_device_count=(\d+)", xla_flags)
  return int(m.group(1)) if m else 0


def detect(environ=None) -> Host:
  """This host's devices, found without importing JAX (a launcher that did would hold the
  accelerators its children need): GPUs from CUDA_VISIBLE_DEVICES or nvidia-smi, TPU chips
  from /dev/accel* or /dev/vfio, CPU fake devices from XLA_FLAGS."""
  env = os.environ if environ is None else environ
  platforms = env.get("JAX_PLATFORMS", "")
  if platforms != "cpu":
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible:
      ids = tuple(i for i in visible.split(",") if i.strip() and i.strip() != "-1")
      if ids:
        return Host("gpu", len(ids), ids)
    if shutil.which("nvidia-smi"):
      out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
      count = sum(line.startswith("GPU ") for line in out.splitlines())
      if count:
        return Host("gpu", count)
    accel = [d for d in _listdir("/dev") if re.fullmatch(r"accel\d+", d)]
    vfio = [d for d in _listdir("/dev/vfio") if d.isdigit()]
    if accel or vfio:
      return Host("tpu", len(accel or vfio))
  return Host("cpu", _forced_cpu_devices(env.get("XLA_FLAGS", "")))


def _listdir(path: str) -> list[str]:
  try:
    return os.listdir(path)
  except OSError:
    return []


def parse(spec: str) -> Host:
  """--devices: 'auto' (detect), 'cpu' (no split), or '<gpu|tpu|cpu>:<count>'."""
  if spec == "auto":
    return detect()
  if spec == "cpu":
    return Host("cpu", 0)
  m = re.fullmatch(r"(gpu|tpu|cpu):(\d+)", spec)
  if not m:
    raise ValueError(f"--devices={spec!r}: use auto, cpu, gpu:N, tpu:N or cpu:N.")
  return Host(m.group(1), int(m.group(2)))
