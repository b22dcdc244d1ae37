"""The KL entropy against SciPy/scikit-learn and closed forms; sharded == one device."""

import numpy as np
import pytest
from scipy import special
from sklearn.neighbors import NearestNeighbors

from collapse_jax.kernels.entropy import kl_entropy
from collapse_jax.sharding import make_mesh


def kl_formula(r, d, k=1):
  """The paper's estimator from each point's k-th neighbour distance r, in float64."""
  n = len(r)
  log_cd = d / 2 * np.log(np.pi) - special.gammaln(d / 2 + 1)
  return special.digamma(n) - special.digamma(k) + log_cd + d / n * np.sum(np.log(r + 1e-10))


def sklearn_entropy(x, k=1):
  """The paper's formula, as the authors' code computes it (scikit-learn neighbours)."""
  dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
  return kl_formula(dist[:, k], x.shape[1], k)


@pytest.mark.parametrize("n,d,k", [(500, 3, 1), (700, 64, 1), (300, 3072, 1), (400, 10, 3)])
def test_matches_sklearn_reference(n, d, k, rng):
  x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0)
  if d == 3072:  # pixel space: raw 0-255 values
    x = rng.integers(0, 256, size=(n, d))
  x = x.astype(np.float32)
  ours = kl_entropy(x, k, block_size=128)
  ref = sklearn_entropy(x.astype(np.float64), k)
  assert abs(ours - ref) <= 1e-4 * abs(ref) + 1e-4


def gaussian_entropy(cov):
  d = cov.shape[0]
  return 0.5 * (d * np.log(2 * np.pi * np.e) + np.linalg.slogdet(cov)[1])


@pytest.mark.parametrize("d", [1, 2, 5])
def test_converges_to_gaussian_entropy(d):
  rng = np.random.default_rng(d)
  a = rng.normal(size=(d, d))
  cov = a @ a.T + 0.5 * np.eye(d)
  truth = gaussian_entropy(cov)
  x = rng.multivariate_normal(np.zeros(d), cov, size=30_000).astype(np.float32)
  # The k=1 estimator's bias at this n is a few hundredths of a nat per dimension.
  assert abs(kl_entropy(x) - truth) < 0.02 * d + 0.03


def test_converges_to_uniform_box_entropy():
  rng = np.random.default_rng(0)
  sides = np.array([1.0, 2.0, 0.5])
  x = (rng.uniform(size=(30_000, 3)) * sides).astype(np.float32)
  assert abs(kl_entropy(x) - np.log(sides).sum()) < 0.05


@pytest.mark.parametrize("shape", [(8, 1), (4, 2), (2, 4)])
def test_sharded_equals_single_device(devices, shape, rng):
  """Rows split over all 8 devices (the ring): the single-device entropy, also for a set
  that does not divide over them, and for uint8 pixels kept uint8."""
  x = rng.normal(size=(803, 24)).astype(np.float32)
  one = kl_entropy(x, block_size=96)
  mesh = make_mesh({"data": shape[0], "fsdp": shape[1]}, devices)
  assert kl_entropy(x, mesh=mesh, block_size=40) == pytest.approx(one, rel=1e-6)
  assert kl_entropy(x, k=2, mesh=mesh) == pytest.approx(kl_entropy(x, k=2), rel=1e-6)
  pixels = rng.integers(0, 256, (400, 300)).astype(np.uint8)
  assert kl_entropy(pixels, mesh=mesh, block_size=64) == pytest.approx(
      kl_entropy(pixels.astype(np.float32)), rel=1e-6)


def test_input_errors():
  with pytest.raises(ValueError, match="k=5"):
    kl_entropy(np.zeros((5, 2), np.float32), k=5)
  with pytest.raises(ValueError, match="NaN"):
    kl_entropy(np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]], np.float32))
  with pytest.raises(ValueError, match="rank 2"):
    kl_entropy(np.zeros((5,), np.float32))
