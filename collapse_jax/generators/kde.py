"""The kernel density estimate: a uniformly drawn training row plus N(0, bandwidth^2 I) noise
(config.model.bandwidth, in model units). It never memorizes and only adds noise: the pure
noise-accumulation regime, the opposite limit to the memorizer.

Under replace with n rows in d dimensions, the KDE's total variance is the training set's
(divide by n) plus d bandwidth^2, so with V the unbiased total variance of the generated
rows, E[V_{g+1} | V_g] = (1 - 1/n) V_g + d bandwidth^2: growth of d bandwidth^2 per
generation for large n (`collapse_jax.study.theory.kde_variance_next`).
"""

import functools

import jax
import jax.numpy as jnp

from collapse_jax.data.sets import ImageSet
from collapse_jax.generators.base import Fitted, flat, to_model, to_stored
from collapse_jax.sharding import rows_sharding


@functools.cache
def _sampler(mesh, n: int, shape: tuple, image: bool, bandwidth: float):
  def draw(key, rows):
    pick_key, noise_key = jax.random.split(key)
    idx = jax.random.randint(pick_key, (n,), 0, rows.shape[0])
    x = jnp.take(rows, idx, axis=0)
    x = x + bandwidth * jax.random.normal(noise_key, x.shape, jnp.float32)
    return to_stored(x.reshape(n, *shape), image)

  return jax.jit(draw, out_shardings=rows_sharding(mesh, n))


class KDE:
  """Gaussian-kernel density estimate of the training rows; unconditional."""

  conditional = False

  def __init__(self, config, data_shape: tuple, num_classes: int, mesh):
    del num_classes
    self.mesh, self.shape = mesh, tuple(data_shape)
    self.bandwidth = float(config.model.bandwidth)

  def fit(self, data: ImageSet, key, *, generation: int, workdir: str,
          log_prefix: str = "") -> Fitted:
    del key, generation, workdir, log_prefix
    return Fitted(flat(to_model(data.images)))

  def sample(self, fitted: Fitted, key, n: int, labels=None):
    del labels
    fn = _sampler(self.mesh, n, self.shape, len(self.shape) == 3, self.bandwidth)
    return fn(key, fitted.state)
