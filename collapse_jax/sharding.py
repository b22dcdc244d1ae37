"""Device mesh and shardings: batch over (data, fsdp), large parameters over fsdp.

FSDP (ZeRO-3) style: every device holds a different slice of the batch; parameters and
optimizer state are split over the `fsdp` axis and gathered by XLA where they are used.
"""

import math
from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")


def make_mesh(shape: Mapping[str, int] | None = None, devices=None) -> Mesh:
  """A ("data", "fsdp") mesh; -1 in `shape` takes the devices left over."""
  devices = list(jax.devices() if devices is None else devices)
  shape = dict(shape or {"data": -1, "fsdp": 1})
  unknown = set(shape) - set(MESH_AXES)
  if unknown:
    raise ValueError(f"config.mesh has unknown axes {sorted(unknown)}; use {MESH_AXES}.")
  sizes = [shape.get(a, 1) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError("config.mesh: at most one axis may be -1.")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"config.mesh={shape}: {len(devices)} devices not divisible by {known}.")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(f"config.mesh={shape} needs {math.prod(sizes)} devices, have {len(devices)}.")
  return jax.make_mesh(
      tuple(sizes),
      MESH_AXES,
      axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES),
      devices=devices,
  )


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over every device of the mesh."""
  return NamedSharding(mesh, P(BATCH_AXES))


def param_spec(shape: tuple[int, ...], fsdp: int, min_size: int) -> P:
  """Shards the largest dimension divisible by `fsdp` for arrays of at least `min_size`."""
  if fsdp == 1 or not shape or math.prod(shape) < min_size:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
    if shape[dim] % fsdp == 0:
      spec = [None] * len(shape)
      spec[dim] = "fsdp"
      return P(*spec)
  return P()


def tree_shardings(abstract_tree, mesh: Mesh, min_size: int = 2**14):
  """NamedShardings for a pytree of (abstract) arrays, by `param_spec`."""
  fsdp = mesh.shape["fsdp"]

  def leaf(x):
    return NamedSharding(mesh, param_spec(tuple(np.shape(x)), fsdp, min_size))

  return jax.tree.map(leaf, abstract_tree)


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Global arrays from this process's slice of the batch (multi-host safe)."""
  sharding = batch_sharding(mesh)
  return {
      k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
      for k, v in batch.items()
  }
