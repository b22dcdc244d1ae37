"""Batched, sharded feature extraction: uint8 images in, host float32 features out.

An `Encoder` bundles a Flax model, its params and its preprocessing. `extract` streams the
images through one jitted function in fixed-size chunks (the last one padded), each chunk
split over every device of the mesh; every process passes its own slice of a chunk and gets
all features back.
"""

import dataclasses
import functools
import logging
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from collapse_jax import sharding

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
def _compiled(encoder: Encoder, mesh: Mesh):
  fn = functools.partial(_features, encoder=encoder)
  batch = sharding.batch_sharding(mesh)
  return jax.jit(fn, in_shardings=(sharding.replicated(mesh), batch), out_shardings=batch)


@functools.cache
def _placed_params(encoder: Encoder, mesh: Mesh):
  return jax.device_put(encoder.params, sharding.replicated(mesh))


def extract(encoder: Encoder, images: np.ndarray, mesh: Mesh, batch_size: int = 256,
            ) -> np.ndarray:
  """Features (N, D) of uint8 images (N, H, W, C); every process holds all N images.
  Grayscale images are repeated to RGB."""
  n = len(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"{encoder.name} features need images (N, H, W, 1 or 3), got "
                     f"{images.shape}.")
  images = to_rgb(images)
  n_dev, n_proc = mesh.size, jax.process_count()
  chunk = max(n_dev, -(-batch_size // n_dev) * n_dev)  # one compiled shape for every call
  fn, params = _compiled(encoder, mesh), _placed_params(encoder, mesh)
  per_process = chunk // n_proc
  lo = jax.process_index() * per_process
  out, t0 = [], time.perf_counter()
  for start in range(0, n, chunk):
    block = np.resize(images[start : start + chunk], (chunk, *images.shape[1:]))
    x = jax.make_array_from_process_local_data(sharding.batch_sharding(mesh),
                                               block[lo : lo + per_process])
    feats = multihost_utils.process_allgather(fn(params, x), tiled=True)
    out.append(np.asarray(feats)[: n - start])
  dt = time.perf_counter() - t0
  log.info("%s features of %d images in %.1fs (%.0f images/s)", encoder.name, n, dt, n / dt)
  return np.concatenate(out)


def to_rgb(images: np.ndarray) -> np.ndarray:
  """Grayscale (N, H, W, 1) -> RGB by repetition; RGB unchanged."""
  return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
