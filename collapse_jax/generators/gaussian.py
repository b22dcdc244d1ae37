"""The fitted Gaussian (Shumailov et al.; the iterative-MLE analyses): maximum-likelihood
mean and covariance of the training rows, sampled exactly.

Each generation reports `model_entropy` (the fitted Gaussian's differential entropy, nats),
`model_trace` (tr Sigma) and `model_mean_sq` (|mu|^2: the squared distance of the fitted mean
from the true mean of data.name=gaussian, which is 0). Under replace with n rows in d
dimensions, n Sigma_{g+1} ~ Wishart(Sigma_g, n - 1), so the entropy changes by
(1/2) [sum_{i<d} psi((n - 1 - i) / 2) + d log(2 / n)] in expectation, and the mean takes a
random walk with steps of variance tr(Sigma_g) / n (`collapse_jax.study.theory`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.data.sets import ImageSet
from collapse_jax.generators.base import Fitted, flat, to_model, to_stored
from collapse_jax.metrics.collapse import gaussian_stats
from collapse_jax.sharding import put_replicated, rows_sharding


def gaussian_entropy(cov: np.ndarray) -> float:
  """(1/2) log det(2 pi e Sigma) in float64; -inf for a singular covariance (n <= d)."""
  w = np.linalg.eigvalsh(np.asarray(cov, np.float64))
  if w.min() <= 0:
    return float("-inf")
  return 0.5 * float(len(w) * np.log(2 * np.pi * np.e) + np.sum(np.log(w)))


@functools.cache
def _sampler(mesh, n: int, shape: tuple, image: bool):
  def draw(key, mean, factor):
    z = jax.random.normal(key, (n, mean.shape[0]), jnp.float32)
    x = mean + jnp.matmul(z, factor.T, precision=jax.lax.Precision.HIGHEST)
    return to_stored(x.reshape(n, *shape), image)

  return jax.jit(draw, out_shardings=rows_sharding(mesh, n))


class Gaussian:
  """N(mean, Sigma) fitted by maximum likelihood; unconditional (labels are ignored)."""

  conditional = False

  def __init__(self, config, data_shape: tuple, num_classes: int, mesh):
    del config, num_classes
    self.mesh, self.shape = mesh, tuple(data_shape)

  def fit(self, data: ImageSet, key, *, generation: int, workdir: str,
          log_prefix: str = "") -> Fitted:
    del key, generation, workdir, log_prefix
    mu, cov = gaussian_stats(flat(to_model(data.images)))  # unbiased: to MLE below
    cov *= (len(data) - 1) / len(data)
    w, v = np.linalg.eigh(cov)
    factor = v * np.sqrt(np.clip(w, 0, None))  # factor @ factor.T = Sigma, also when singular
    state = (put_replicated(mu.astype(np.float32), self.mesh),
             put_replicated(factor.astype(np.float32), self.mesh))
    return Fitted(state, {"model_entropy": gaussian_entropy(cov),
                          "model_trace": float(np.trace(cov)), "model_mean_sq": float(mu @ mu)})

  def sample(self, fitted: Fitted, key, n: int, labels=None):
    del labels
    return _sampler(self.mesh, n, self.shape, len(self.shape) == 3)(key, *fitted.state)
