"""The Kozachenko-Leonenko kNN entropy estimator (the paper's diversity measure).

  H = psi(n) - psi(k) + log c_d + (d / n) sum_i log(r_k(i) + 1e-10),
  c_d = pi^(d/2) / Gamma(d/2 + 1)   (log c_d via log-gamma: stable for d in the thousands)
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from scipy import special

from collapse_jax.kernels.knn import knn_self
from collapse_jax.kernels.ring import ring_knn
from collapse_jax.sharding import to_host


def log_unit_ball_volume(d: int) -> float:
  """log(pi^(d/2) / Gamma(d/2 + 1))."""
  return 0.5 * d * math.log(math.pi) - float(special.gammaln(0.5 * d + 1.0))


def kl_from_distances(sum_log_r: float, n: int, d: int, k: int) -> float:
  """The estimator from sum_i log(r_k(i) + 1e-10), in float64 on the host."""
  return float(
      special.digamma(n) - special.digamma(k) + log_unit_ball_volume(d) + d / n * sum_log_r
  )


def check_features(x, name: str = "features") -> None:
  """Rank 2 and finite, or a ValueError that says which."""
  if np.ndim(x) != 2:
    raise ValueError(f"{name} must have rank 2 (points x features), got shape {np.shape(x)}.")
  finite = jnp.isfinite(jnp.asarray(x)).all()
  if not bool(finite):
    raise ValueError(f"{name} contain NaN or inf; clean or drop those points first.")


def kth_neighbor_distance(
    x, k: int = 1, *, block_size: int = 1024, mesh: Mesh | None = None
) -> jax.Array:
  """Distance from each point to its k-th nearest other point, shape (n,). With a mesh of
  more than one device the rows are split over all of them (`kernels.ring`)."""
  x = jnp.asarray(x)
  check_features(x)
  n = x.shape[0]
  if not 1 <= k < n:
    raise ValueError(f"k={k} must be in [1, n) for n={n} points.")
  if mesh is None or mesh.size == 1:
    dist, _ = knn_self(x, k, block_size=block_size)
  else:
    dist, _ = ring_knn(x, x, k, mesh=mesh, block_size=block_size, exclude_self=True)
  return dist[:, k - 1]


def kl_entropy(
    x, k: int = 1, *, block_size: int = 1024, mesh: Mesh | None = None
) -> float:
  """Kozachenko-Leonenko entropy (nats) of the rows of `x` (n, d), exactly as the paper.

  Pixel-space callers pass raw 0-255 values (uint8 rows stay uint8), not rescaled. With
  `mesh`, the rows are split over every device and no device holds the whole set.
  """
  r = kth_neighbor_distance(x, k, block_size=block_size, mesh=mesh)
  sum_log = float(np.sum(np.log(to_host(r).astype(np.float64) + 1e-10)))
  n, d = np.shape(x)
  return kl_from_distances(sum_log, n, d, k)
