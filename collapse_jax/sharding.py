"""Device mesh and shardings: batch over (data, fsdp), large parameters over fsdp.

FSDP (ZeRO-3) style: every device holds a different slice of the batch; parameters and
optimizer state are split over the `fsdp` axis and gathered by XLA where they are used.
"""

import functools
import math
import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from collapse_jax import platform
from collapse_jax.errors import ConfigError

MESH_AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")


def make_mesh(shape: Mapping[str, int] | None = None, devices=None) -> Mesh:
  """A ("data", "fsdp") mesh; -1 in `shape` takes the devices left over. By default over
  the devices this process may use (`platform.visible_devices`)."""
  devices = list(platform.visible_devices() if devices is None else devices)
  shape = dict(shape or {"data": -1, "fsdp": 1})
  unknown = set(shape) - set(MESH_AXES)
  if unknown:
    raise ConfigError(f"config.mesh has unknown axes {sorted(unknown)}; use {MESH_AXES}.")
  sizes = [shape.get(a, 1) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError("config.mesh: at most one axis may be -1.")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ConfigError(f"config.mesh={shape}: {len(devices)} devices not divisible by {known}.")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ConfigError(f"config.mesh={shape} needs {math.prod(sizes)} devices, have {len(devices)}.")
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


# The parameter rule table: (regex searched in the '/'-joined path, spec), first match wins.
# The paths are those of the train state, so the same rule covers a parameter, its EMA
# and its Adam moments ('opt_state/0/mu/.../Conv_3/kernel'). Kernels split their output
# features: conv (kh, kw, in, out), dense (in, out), class embedding (classes, dim).
# Everything else (biases, GroupNorm scales, counters) is small and stays replicated.
PARAM_RULES = (
    (r"Conv_\d+/kernel$", P(None, None, None, "fsdp")),
    (r"(Dense_\d+|query|key|value|out)/kernel$", P(None, "fsdp")),
    (r"Embed_\d+/embedding$", P(None, "fsdp")),
    (r".*", P()),
)
MIN_SHARD_SIZE = 2**14  # smaller arrays stay replicated: splitting them saves nothing


def path_str(path) -> str:
  """'params/Conv_0/kernel' for a pytree key path: what the rules are matched against."""
  return jax.tree_util.keystr(path, simple=True, separator="/")


def param_spec(name: str, shape: tuple[int, ...], mesh_shape: Mapping[str, int],
               rules=PARAM_RULES, min_size: int = MIN_SHARD_SIZE) -> P:
  """The first rule matching `name`; replicated if small or if an axis does not divide."""
  if math.prod(shape) < min_size:
    return P()
  pattern, spec = next(((p, s) for p, s in rules if re.search(p, name)), (None, P()))
  if len(spec) > len(shape):
    raise ValueError(f"sharding rule {pattern!r} gives {spec} for {name} of shape {shape}.")
  dims = []
  for size, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec)), strict=True):
    names = (axes,) if isinstance(axes, str) else tuple(axes or ())
    n = math.prod(mesh_shape[a] for a in names)
    # An axis of size 1, or one that does not divide the dimension, leaves it whole.
    dims.append(axes if n > 1 and size % n == 0 else None)
  return P(*dims) if any(dims) else P()


def tree_shardings(abstract_tree, mesh: Mesh, rules=PARAM_RULES,
                   min_size: int = MIN_SHARD_SIZE):
  """NamedShardings for a pytree of (abstract) arrays, by the rule table."""

  def leaf(path, x):
    spec = param_spec(path_str(path), tuple(np.shape(x)), mesh.shape, rules, min_size)
    return NamedSharding(mesh, spec)

  return jax.tree_util.tree_map_with_path(leaf, abstract_tree)


def constrain_batch(x: jax.Array) -> jax.Array:
  """Pins an activation's batch dimension to the batch axes of the mesh being traced under.

  Without it XLA may follow an `fsdp`-split kernel and split the next activation by
  channels, trading a cheap weight all-gather for activation all-to-alls. A no-op outside
  a mesh, or when the batch does not divide over the devices (model init uses batch 1).
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or not set(BATCH_AXES) <= set(mesh.axis_names):
    return x
  if x.shape[0] % math.prod(mesh.shape[a] for a in BATCH_AXES):
    return x
  return jax.lax.with_sharding_constraint(x, P(BATCH_AXES))


def under_mesh(fn, mesh: Mesh):
  """`fn` traced with `mesh` as the ambient mesh, so `constrain_batch` sees it under jit."""

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      return fn(*args, **kwargs)

  return wrapped


def rows_sharding(mesh: Mesh, n: int) -> NamedSharding:
  """Rows of an n-row set split over as many batch axes as divide n (else replicated)."""
  for axes in (BATCH_AXES, ("data",), ("fsdp",)):
    if n % math.prod(mesh.shape[a] for a in axes) == 0:
      return NamedSharding(mesh, P(axes))
  return replicated(mesh)


def _from_host(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """A global array from a host array that every process holds whole; each process places
  only its own devices' parts (multi-host safe)."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])


def put_rows(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """A host array that every process holds whole, as a global array split by rows."""
  return _from_host(x, rows_sharding(mesh, len(x)))


@functools.cache
def _take(mesh: Mesh, n: int):
  return jax.jit(lambda x, i: jnp.take(x, i, axis=0), out_shardings=rows_sharding(mesh, n))


def put_replicated(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """A small host array that every process holds, on every device."""
  return _from_host(x, replicated(mesh))


def take_rows(x, idx):
  """x[idx] for a global array and host indices, gathered on the devices, split by rows
  (plain indexing for a host array)."""
  if not isinstance(x, jax.Array):
    return x[np.asarray(idx)]
  mesh = x.sharding.mesh
  idx = put_replicated(np.asarray(idx, np.int32), mesh)
  return _take(mesh, idx.shape[0])(x, idx)


@functools.cache
def _concat(mesh: Mesh, n: int):
  return jax.jit(lambda xs: jnp.concatenate(xs), out_shardings=rows_sharding(mesh, n))


def concat_rows(xs) -> jax.Array:
  """Global arrays stacked along rows, on the devices, split by rows."""
  return _concat(xs[0].sharding.mesh, sum(x.shape[0] for x in xs))(list(xs))


def to_host(x) -> np.ndarray:
  """The whole of a (possibly multi-host sharded) array as numpy, on every process."""
  if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Global arrays from this process's slice of the batch (multi-host safe)."""
  sharding = batch_sharding(mesh)
  return {
      k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
      for k, v in batch.items()
  }
