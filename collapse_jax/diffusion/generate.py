"""Sharded sampling: many images from a trained UNet, in fixed-size jitted chunks.

The images stay on the devices, split by rows over the mesh: a pool is never gathered onto
one host (multi-host runs keep each process's rows on its own devices).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh

from collapse_jax import sharding
from collapse_jax.diffusion import sampling
from collapse_jax.diffusion.schedule import Schedule
from collapse_jax.errors import ConfigError
from collapse_jax.images import to_uint8


def _eps_fn(model, params, labels, guidance_scale):
  apply_fn = lambda p, x, t, y=None: model.apply({"params": p}, x, t, y)
  return sampling.guided_eps_fn(apply_fn, params, labels, guidance_scale, model.num_classes)


def _check_method(method: str) -> None:
  if method not in ("ddpm", "ddim"):
    raise ConfigError(f"config.sample.method={method!r}; use 'ddpm' or 'ddim'.")


def _sample_chunk(params, rng, labels, schedule, *, model, shape, method, num_steps, eta,
                  guidance_scale, clip_x0, out_sharding):
  noise_rng, step_rng = jax.random.split(rng)
  noise = jax.random.normal(noise_rng, shape, jnp.float32)
  noise = jax.lax.with_sharding_constraint(noise, out_sharding)
  eps_fn = _eps_fn(model, params, labels, guidance_scale)
  if method == "ddpm":
    return sampling.ddpm_sample(eps_fn, schedule, noise, step_rng, clip_x0=clip_x0)
  return sampling.ddim_sample(eps_fn, schedule, noise, step_rng, num_steps, eta, clip_x0)


@functools.cache
def compiled_sampler(
    mesh: Mesh, model: nn.Module, shape: tuple, method: str, num_steps: int, eta: float,
    guidance_scale: float, clip_x0: bool,
):
  """A jitted sampler for one chunk of `shape[0]` images, sharded over the batch."""
  _check_method(method)
  out = sharding.batch_sharding(mesh)
  fn = functools.partial(
      _sample_chunk, model=model, shape=shape, method=method, num_steps=num_steps, eta=eta,
      guidance_scale=guidance_scale, clip_x0=clip_x0, out_sharding=out,
  )
  return jax.jit(sharding.under_mesh(fn, mesh), out_shardings=out)


def _denoise(params, x, i, rng, labels, schedule, *, model, method, num_steps, eta,
             guidance_scale, clip_x0):
  eps_fn = _eps_fn(model, params, labels, guidance_scale)
  if method == "ddpm":
    return sampling.ddpm_step(eps_fn, schedule, x, schedule.num_steps - 1 - i, rng, clip_x0)
  return sampling.ddim_step(eps_fn, schedule, x, i, rng, num_steps, eta, clip_x0)


@functools.cache
def compiled_denoise_step(
    mesh: Mesh, model: nn.Module, method: str, num_steps: int, eta: float,
    guidance_scale: float, clip_x0: bool,
):
  """One step (loop index i) of the sampler's `lax` loop, jitted alone with the same
  shardings: `(params, x, i, rng, labels, schedule) -> x`. What the loop repeats; a plan
  costs the sampler from it, as cost models count a while loop's body once."""
  _check_method(method)
  out = sharding.batch_sharding(mesh)
  fn = functools.partial(_denoise, model=model, method=method, num_steps=num_steps, eta=eta,
                         guidance_scale=guidance_scale, clip_x0=clip_x0)
  return jax.jit(sharding.under_mesh(fn, mesh), out_shardings=out)


def chunk_size(batch_size: int, devices: int, num_images: int) -> int:
  """Images per jitted sampler call: the batch size (at most the images wanted), rounded up
  to a multiple of the devices."""
  return max(devices, (min(batch_size, num_images) + devices - 1) // devices * devices)


def generate(
    params,
    rng: jax.Array,
    num_images: int,
    *,
    mesh: Mesh,
    model: nn.Module,
    schedule: Schedule,
    image_shape: tuple,
    sample_config,
    labels: np.ndarray | None = None,
    as_uint8: bool = True,
) -> jax.Array:
  """`num_images` samples, uint8 (or in [-1, 1] if not `as_uint8`), as a global array split
  by rows over `mesh` (`sharding.rows_sharding`); labels (host ints) pick the classes."""
  chunk = chunk_size(int(sample_config.batch_size), mesh.size, num_images)
  fn = compiled_sampler(
      mesh, model, (chunk, *image_shape), sample_config.method, int(sample_config.num_steps),
      float(sample_config.eta), float(sample_config.guidance_scale),
      bool(sample_config.clip_x0),
  )
  batch_sh = sharding.batch_sharding(mesh)
  outputs = []
  for i, start in enumerate(range(0, num_images, chunk)):
    y = None
    if labels is not None:
      y = np.resize(labels[start : start + chunk], chunk).astype(np.int32)
      y = jax.device_put(y, batch_sh)
    outputs.append(fn(params, jax.random.fold_in(rng, i), y, schedule))
  return _join(mesh, num_images, as_uint8)(outputs)


@functools.cache
def _join(mesh: Mesh, n: int, as_uint8: bool):
  """The chunks joined and cut to n rows on the devices (the pool is quantised there)."""

  def join(chunks):
    images = jnp.concatenate(chunks)[:n]
    return to_uint8(images) if as_uint8 else images

  return jax.jit(join, out_shardings=sharding.rows_sharding(mesh, n))
