"""Vector data with known laws: a Gaussian with a chosen covariance spectrum, and a mixture
of Gaussians (the setting the paper names as open for a theory of collapse dynamics).

Drawn once from `config.data.seed`, so every loop seed starts from the same real set (as
with a real dataset); rows are float32 and stay float32 through the loop (no uint8).
"""

import numpy as np

DEFAULT_SIZE = 10_000


def gaussian_spectrum(dim: int, scale: float, decay: float) -> np.ndarray:
  """Variances scale^2 (i + 1)^-decay, i = 0..d-1 (decay 0: isotropic)."""
  return scale**2 * np.arange(1, dim + 1, dtype=np.float64) ** -decay


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
  """A Haar-random orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
  q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
  return q * np.sign(np.diag(r))


def gaussian(size: int, dim: int, scale: float, decay: float, seed: int):
  """(points (size, dim) float32, covariance (dim, dim) float64): N(0, R diag(spectrum) R^T)
  with a random rotation R, so no axis is special."""
  rng = np.random.default_rng(seed)
  rot = random_rotation(dim, rng)
  sd = np.sqrt(gaussian_spectrum(dim, scale, decay))
  points = (rng.standard_normal((size, dim)) * sd) @ rot.T
  return points.astype(np.float32), (rot * sd**2) @ rot.T


def mixture(size: int, dim: int, components: int, spread: float, scale: float, seed: int):
  """(points, labels, means): equally weighted N(mean_k, scale^2 I), means ~ N(0, spread^2 I);
  labels name each point's component."""
  rng = np.random.default_rng(seed)
  means = rng.standard_normal((components, dim)) * spread
  labels = rng.integers(components, size=size).astype(np.int32)
  points = means[labels] + scale * rng.standard_normal((size, dim))
  return points.astype(np.float32), labels, means
