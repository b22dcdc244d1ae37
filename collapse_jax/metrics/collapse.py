"""Per-generation collapse measures: entropy, generalization score, FD, pixel variance."""

import warnings

import numpy as np
from scipy import linalg

from collapse_jax.entropy import kl_entropy
from collapse_jax.knn import knn


def pixel_features(images: np.ndarray) -> np.ndarray:
  """Images in [-1, 1] -> flattened float32 pixels on the paper's 0-255 scale."""
  return ((np.asarray(images, np.float32) + 1.0) * 127.5).reshape(len(images), -1)


def entropy(features: np.ndarray, mesh=None) -> float:
  """KL entropy (k = 1); NaN for fewer than 2 points."""
  return float("nan") if len(features) < 2 else kl_entropy(features, 1, mesh=mesh)


def nearest_train(generated: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """For each generated feature row: (distance to, index of) the nearest training row."""
  dist, idx = knn(generated, train, 1)
  return np.asarray(dist[:, 0], np.float64), np.asarray(idx[:, 0])


def generalization_score(generated: np.ndarray, train: np.ndarray, pixel_mse: bool,
                         max_samples: int = 1000) -> float:
  """The paper's score: mean distance from (up to 1,000) samples to their nearest training
  image. Pixel space reports the per-pixel MSE (section 3), other spaces the distance."""
  dist, _ = nearest_train(generated[:max_samples], train)
  if pixel_mse:
    return float(np.mean(dist**2 / generated.shape[1]))
  return float(np.mean(dist))


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  f = np.asarray(features, np.float64)
  return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), with scipy's sqrtm in float64."""
  with warnings.catch_warnings():
    # Singular covariances (e.g. always-black border pixels) are expected; checked below.
    warnings.simplefilter("ignore", linalg.LinAlgWarning)
    covmean = linalg.sqrtm(np.asarray(sigma1) @ np.asarray(sigma2))
  if not np.isfinite(covmean).all():
    eps = 1e-6 * np.eye(len(mu1))
    covmean = linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
  covmean = np.real(covmean)
  diff = np.asarray(mu1) - np.asarray(mu2)
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def pixel_variance(features: np.ndarray) -> float:
  """Trace of the covariance (total variance) of the feature rows."""
  return float(np.var(np.asarray(features, np.float64), axis=0, ddof=1).sum())
