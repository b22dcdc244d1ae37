"""Improved precision and recall (Kynkaanniemi et al. 2019) with a blockwise JAX kernel.

Each set's manifold is the union of balls around its points, of radius the distance to the
point's k-th nearest other point (k = 3). Precision: the fraction of generated points inside
the real manifold; recall: the fraction of real points inside the generated one.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from collapse_jax.kernels.entropy import kth_neighbor_distance
from collapse_jax.kernels.knn import sq_dists


@functools.partial(jax.jit, static_argnames=("block_size",))
def inside_any_ball(queries, centers, radii, block_size: int = 1024):
  """For each query row: is ||q - c_j|| <= radii_j for some center j? Memory O(block^2)."""
  m, n = queries.shape[0], centers.shape[0]
  bq, bc = min(block_size, m), min(block_size, n)
  q = jnp.pad(queries, ((0, -m % bq), (0, 0)))
  c = jnp.pad(centers, ((0, -n % bc), (0, 0)))
  r2 = jnp.pad(jnp.square(radii.astype(jnp.float32)), (0, -n % bc), constant_values=-1.0)

  def query_block(qi):
    qb = lax.dynamic_slice_in_dim(q, qi * bq, bq)

    def center_block(hit, ci):
      cb = lax.dynamic_slice_in_dim(c, ci * bc, bc)
      rb = lax.dynamic_slice_in_dim(r2, ci * bc, bc)
      return hit | jnp.any(sq_dists(qb, cb) <= rb[None, :], axis=1), None

    hit, _ = lax.scan(center_block, jnp.zeros(bq, bool), jnp.arange(c.shape[0] // bc))
    return hit

  return lax.map(query_block, jnp.arange(q.shape[0] // bq)).reshape(-1)[:m]


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
  """(precision, recall) of `fake` against `real` feature rows."""
  real, fake = jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32)
  r_real = kth_neighbor_distance(real, k)
  r_fake = kth_neighbor_distance(fake, k)
  precision = float(jnp.mean(inside_any_ball(fake, real, r_real)))
  recall = float(jnp.mean(inside_any_ball(real, fake, r_fake)))
  return precision, recall
