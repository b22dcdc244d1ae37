"""Batched, sharded feature extraction: uint8 images in, float32 features out, on device.

An `Encoder` bundles a Flax model, its params and its preprocessing. `extract` runs one
jitted function over a set split by rows: every device encodes its own rows in fixed-size
batches (`lax.map`), and the features stay split the same way.
"""

import dataclasses
import functools
import logging
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from collapse_jax import sharding, xla_flags

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class Encoder:
  """model.apply(params, preprocess(images)) -> output; `pick` selects the feature array."""

  name: str
  model: nn.Module
  params: dict
  preprocess: Callable[[jax.Array], jax.Array]
  pick: Callable = lambda out: out


def _features(params, images, *, encoder: Encoder):
  out = encoder.model.apply({"params": params}, encoder.preprocess(images))
  return encoder.pick(out).astype(jnp.float32)


@functools.cache
def _compiled(encoder: Encoder, mesh: Mesh, n: int, local_batch: int):
  """Features of n images, each device encoding its own rows `local_batch` at a time."""

  def local(params, x):
    m = x.shape[0]
    b = min(local_batch, m)
    x = jnp.pad(x, ((0, -m % b),) + ((0, 0),) * (x.ndim - 1))
    f = lax.map(lambda xb: _features(params, to_rgb(xb), encoder=encoder),
                x.reshape(-1, b, *x.shape[1:]))
    return f.reshape(-1, f.shape[-1])[:m]

  def features(params, images):
    # Sets that do not divide over the devices are padded (and cut after) on the devices.
    x = jnp.pad(images, ((0, -n % mesh.size),) + ((0, 0),) * (images.ndim - 1))
    f = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(sharding.BATCH_AXES)),
                      out_specs=P(sharding.BATCH_AXES))(params, x)
    return f[:n]

  options = xla_flags.encoder_compiler_options(mesh.devices.flat[0].platform)
  return jax.jit(features, out_shardings=sharding.rows_sharding(mesh, n),
                 compiler_options=options)


@functools.cache
def _placed_params(encoder: Encoder, mesh: Mesh):
  return jax.device_put(encoder.params, sharding.replicated(mesh))


def extract(encoder: Encoder, images, mesh: Mesh, batch_size: int = 256) -> jax.Array:
  """Features (N, D) float32 of uint8 images (N, H, W, C), grayscale repeated to RGB.

  `images` is a global device array (or a host array every process holds whole, placed by
  rows first); the features come back split by rows the same way. Each device encodes its
  own rows, batch_size / devices at a time: a set split over every device does not move
  (others are padded or re-split on the devices first).
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"{encoder.name} features need images (N, H, W, 1 or 3), got "
                     f"{images.shape}.")
  if not isinstance(images, jax.Array):
    images = sharding.put_rows(images, mesh)
  n = images.shape[0]
  fn = _compiled(encoder, mesh, n, max(1, -(-batch_size // mesh.size)))
  t0 = time.perf_counter()
  feats = fn(_placed_params(encoder, mesh), images).block_until_ready()
  dt = time.perf_counter() - t0
  log.info("%s features of %d images in %.1fs (%.0f images/s)", encoder.name, n, dt, n / dt)
  return feats


def to_rgb(images):
  """Grayscale (N, H, W, 1) -> RGB by repetition; RGB unchanged."""
  return jnp.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
