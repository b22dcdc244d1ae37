"""The debiased Sinkhorn divergence between two feature sets (ott-jax): an optimal-transport
distance beside FD that assumes nothing Gaussian about the features.

  S_eps(x, y) = OT_eps(x, y) - OT_eps(x, x) / 2 - OT_eps(y, y) / 2,

uniform weights, squared Euclidean cost at float32 on every backend. The cost matrix is
dense (n x m floats: 4 MB for the loop's 1,000 x 1,000): ott-jax 0.6.0's online cost blocks
(`PointCloud(batch_size=...)`) fail on jax 0.12 (`jax.interpreters.batching` has no
`is_vmappable`), so the loop caps both sets at config.loop.gen_score_samples rows. `eps`
is fixed per run from the real data's scale (`epsilon_for`), so generations are comparable;
as eps -> 0, S_eps -> W2^2 (tests/test_sinkhorn.py checks it against an exact assignment).
"""

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import pointcloud
from ott.tools import sinkhorn_divergence as sd

from collapse_jax.metrics import collapse
from collapse_jax.sharding import to_host

RELATIVE_EPSILON = 0.05  # eps as a share of the real rows' mean squared pair distance


def epsilon_for(real, relative: float = RELATIVE_EPSILON) -> float:
  """`relative` x the mean squared distance between two real rows (2 x their total
  variance): the entropic blur on the data's own scale, fixed once per run and space."""
  return relative * 2.0 * collapse.pixel_variance(real)


def sinkhorn_divergence(x, y, epsilon: float, *, max_iterations: int = 2000,
                        threshold: float = 1e-3) -> float:
  """S_eps(x, y) of two row sets (any dtype; uint8 pixels read as float32)."""
  x = jnp.asarray(x).astype(jnp.float32)
  y = jnp.asarray(y).astype(jnp.float32)
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
    raise ValueError(f"need two row sets of the same width, got {x.shape} and {y.shape}.")
  # ott's cost blocks are matmuls: full float32 (a TPU's default is one bfloat16 pass).
  with jax.default_matmul_precision("highest"):
    value, _ = sd.sinkhorn_divergence(
        pointcloud.PointCloud, x, y, epsilon=float(epsilon),
        solve_kwargs={"max_iterations": max_iterations, "threshold": threshold})
  return float(np.asarray(to_host(value)))
