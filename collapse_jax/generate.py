"""Sharded sampling: many images from a trained UNet, in fixed-size jitted chunks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from collapse_jax import sharding
from collapse_jax.diffusion import sampling
from collapse_jax.diffusion.schedule import Schedule


def _sample_chunk(params, rng, labels, schedule, *, model, shape, method, num_steps, eta,
                  guidance_scale, clip_x0, out_sharding):
  noise_rng, step_rng = jax.random.split(rng)
  noise = jax.random.normal(noise_rng, shape, jnp.float32)
  noise = jax.lax.with_sharding_constraint(noise, out_sharding)
  apply_fn = lambda p, x, t, y=None: model.apply({"params": p}, x, t, y)
  eps_fn = sampling.guided_eps_fn(apply_fn, params, labels, guidance_scale, model.num_classes)
  if method == "ddpm":
    return sampling.ddpm_sample(eps_fn, schedule, noise, step_rng, clip_x0=clip_x0)
  return sampling.ddim_sample(eps_fn, schedule, noise, step_rng, num_steps, eta, clip_x0)


@functools.cache
def compiled_sampler(
    mesh: Mesh, model: nn.Module, shape: tuple, method: str, num_steps: int, eta: float,
    guidance_scale: float, clip_x0: bool,
):
  """A jitted sampler for one chunk of `shape[0]` images, sharded over the batch."""
  if method not in ("ddpm", "ddim"):
    raise ValueError(f"config.sample.method={method!r}; use 'ddpm' or 'ddim'.")
  out = sharding.batch_sharding(mesh)
  fn = functools.partial(
      _sample_chunk, model=model, shape=shape, method=method, num_steps=num_steps, eta=eta,
      guidance_scale=guidance_scale, clip_x0=clip_x0, out_sharding=out,
  )
  return jax.jit(sharding.under_mesh(fn, mesh), out_shardings=out)


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
) -> np.ndarray:
  """`num_images` samples in [-1, 1] as a host array; labels (if any) pick the classes."""
  chunk = int(sample_config.batch_size)
  n_dev = mesh.size
  chunk = max(n_dev, (min(chunk, num_images) + n_dev - 1) // n_dev * n_dev)
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
    images = fn(params, jax.random.fold_in(rng, i), y, schedule)
    # Every process gets all images (a no-op gather on one host).
    images = multihost_utils.process_allgather(images, tiled=True)
    outputs.append(np.asarray(images)[: num_images - start])
  return np.concatenate(outputs)[:num_images]
