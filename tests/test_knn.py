"""kNN kernel against a brute-force NumPy reference on fresh random inputs."""

import numpy as np
import pytest

from collapse_jax.kernels.knn import knn, knn_self


def brute(q, x, k, exclude_self):
  d = np.sqrt(((q[:, None].astype(np.float64) - x[None].astype(np.float64)) ** 2).sum(-1))
  if exclude_self:
    np.fill_diagonal(d, np.inf)
  idx = np.argsort(d, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(d, idx, 1), idx


def fresh(n, d, seed=None):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("n,d,k,block", [(203, 7, 1, 64), (203, 7, 5, 50), (64, 33, 3, 1024),
                                         (130, 3, 2, 129)])
def test_self_knn_matches_brute_force(n, d, k, block):
  x = fresh(n, d)
  ref_d, ref_i = brute(x, x, k, True)
  for dist, idx in (knn_self(x, k, block_size=block),
                    knn(x, x, k, block_size=block, exclude_self=True)):
    np.testing.assert_allclose(dist, ref_d, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(idx, ref_i)


def test_queries_against_base_with_k_gt_1():
  q, x = fresh(77, 12), fresh(301, 12)
  ref_d, ref_i = brute(q, x, 4, False)
  dist, idx = knn(q, x, 4, block_size=40)
  np.testing.assert_allclose(dist, ref_d, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(idx, ref_i)


def test_duplicates_give_exactly_zero_and_ties_resolve_to_a_tied_point(rng):
  # Large pixel-like values make ||q||^2 + ||x||^2 - 2 q.x cancel badly; recompute fixes it.
  x = rng.integers(0, 256, size=(50, 3072)).astype(np.float32)
  x[7] = x[31]
  x[8] = x[31]
  dist, idx = map(np.asarray, knn_self(x, 2, block_size=16))
  assert dist[31, 0] == 0.0 and dist[31, 1] == 0.0 and set(idx[31]) == {7, 8}
  assert dist[7, 0] == 0.0 and idx[7, 0] in (8, 31)
  # A lattice: every point has several neighbours at exactly the same distance.
  grid = np.stack(np.meshgrid(np.arange(5), np.arange(5)), -1).reshape(-1, 2).astype(np.float32)
  dist, idx = map(np.asarray, knn_self(grid, 2, block_size=7))
  np.testing.assert_array_equal(dist, np.ones((25, 2), np.float32))
  np.testing.assert_allclose(np.abs(grid[idx] - grid[:, None]).sum(-1), 1.0)


def test_bf16_inputs_accumulate_in_float32():
  import jax.numpy as jnp
  x = fresh(120, 64)
  xb = jnp.asarray(x, jnp.bfloat16)
  ref_d, ref_i = brute(np.asarray(xb, np.float32), np.asarray(xb, np.float32), 1, True)
  dist, idx = knn_self(xb, 1, block_size=32)
  np.testing.assert_allclose(dist, ref_d, rtol=1e-4)


def test_approx_mode_recall():
  x = fresh(500, 16)
  exact = np.asarray(knn_self(x, 5)[1])
  _, approx = knn(x, x, 5, exclude_self=True, approx=True, block_size=128)
  pairs = zip(exact, np.asarray(approx), strict=True)
  recall = np.mean([len(set(a) & set(b)) / 5 for a, b in pairs])
  assert recall >= 0.95


def test_rank_errors():
  with pytest.raises(ValueError, match="rank 2"):
    knn_self(np.zeros((4, 3, 2), np.float32))
