"""The Sinkhorn divergence (metrics/sinkhorn.py) against an exact optimal transport."""

import numpy as np
from scipy.optimize import linear_sum_assignment

from collapse_jax.metrics.sinkhorn import epsilon_for, sinkhorn_divergence


def test_tends_to_the_exact_w2_as_epsilon_goes_to_zero(rng):
  """Uniform sets of equal size: OT is an assignment (scipy's exact one), and the debiased
  divergence approaches its W2^2 as eps shrinks."""
  x = rng.uniform(size=(24, 3))
  y = rng.uniform(size=(24, 3)) + rng.uniform(0, 0.5, size=3)
  cost = ((x[:, None] - y[None]) ** 2).sum(-1)
  rows, cols = linear_sum_assignment(cost)
  w2 = cost[rows, cols].mean()
  errors = [abs(sinkhorn_divergence(x, y, eps, max_iterations=20_000, threshold=1e-6) - w2)
            for eps in (1e-1, 1e-2, 3e-4)]
  print(f"W2^2 {w2:.5f}; |S_eps - W2^2| at eps 0.1, 0.01, 3e-4: {errors}")
  assert errors[0] > errors[1] > errors[2]
  assert errors[2] < 1e-3 * w2


def test_zero_on_the_same_set_and_symmetric(rng):
  x = rng.normal(size=(40, 5)).astype(np.float32)
  y = rng.normal(size=(30, 5)).astype(np.float32) + 1.0
  eps = epsilon_for(x)
  assert abs(sinkhorn_divergence(x, x, eps)) < 1e-4
  xy, yx = sinkhorn_divergence(x, y, eps), sinkhorn_divergence(y, x, eps)
  assert xy > 0.5 and abs(xy - yx) < 1e-3 * xy


def test_epsilon_is_a_share_of_the_mean_squared_pair_distance(rng):
  x = rng.integers(0, 256, (50, 12)).astype(np.uint8)
  f = x.astype(np.float64)
  pairs = ((f[:, None] - f[None]) ** 2).sum(-1)
  mean_pair = pairs.sum() / (len(f) * (len(f) - 1))  # over distinct pairs: 2 tr(cov)
  np.testing.assert_allclose(epsilon_for(x, 0.05), 0.05 * mean_pair, rtol=1e-5)
