"""What a run got: its platform, devices and processes, said at start; and the devices of
this process a job may use.

A launcher that runs several jobs on one host gives each its own devices: on GPUs through
CUDA_VISIBLE_DEVICES, on a TPU VM through the TPU_* chip variables (the process then sees
only those), and on a CPU host with forced fake devices through COLLAPSE_DEVICES, the ids
of `jax.devices()` this process's mesh may use (study/devices.py makes the plans).
"""

import os

import jax

from collapse_jax.errors import ConfigError

DEVICES_ENV = "COLLAPSE_DEVICES"
# The variables a launcher sets to split a host's accelerators, said with the devices.
VISIBILITY_ENV = ("CUDA_VISIBLE_DEVICES", "TPU_VISIBLE_CHIPS", "TPU_CHIPS_PER_PROCESS_BOUNDS",
                  DEVICES_ENV)


def visible_devices() -> list:
  """`jax.devices()`, or those whose ids COLLAPSE_DEVICES lists (one process only)."""
  devices = jax.devices()
  wanted = os.environ.get(DEVICES_ENV, "").strip()
  if not wanted:
    return devices
  if jax.process_count() > 1:
    raise ConfigError(f"{DEVICES_ENV}={wanted!r} selects devices of one process; a run of "
                      f"{jax.process_count()} processes uses every device. Unset it.")
  try:
    ids = [int(i) for i in wanted.split(",")]
  except ValueError:
    raise ConfigError(f"{DEVICES_ENV}={wanted!r}: give device ids, e.g. 0,1.") from None
  by_id = {d.id: d for d in devices}
  missing = [i for i in ids if i not in by_id]
  if missing:
    raise ConfigError(f"{DEVICES_ENV}={wanted!r}: no device {missing} among the ids "
                      f"{sorted(by_id)} of this process.")
  return [by_id[i] for i in ids]


def describe(mesh) -> list[str]:
  """The lines a run logs at start: platform, device kind and count, processes, mesh, and
  the visibility variables a launcher set."""
  devices = list(mesh.devices.flat)
  kinds = sorted({d.device_kind for d in devices})
  local = [d for d in devices if d.process_index == jax.process_index()]
  env = [f"{k}={os.environ[k]}" for k in VISIBILITY_ENV if os.environ.get(k)]
  n = len(devices)
  return [
      f"platform {devices[0].platform} ({', '.join(kinds)}): {n} device{'s' * (n != 1)} in "
      f"the mesh, {len(local)} on this process (ids {[d.id for d in local]}), "
      f"{jax.device_count()} in all",
      f"process {jax.process_index()} of {jax.process_count()}; mesh {dict(mesh.shape)}"
      + (f"; {' '.join(env)}" if env else ""),
  ]
