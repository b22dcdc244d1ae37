"""PyTorch `interpolate` (align_corners=False, no antialias) as exact resampling matrices.

Pretrained encoders were fitted with PyTorch's resizing; reproducing it (rather than
jax.image.resize, which antialiases and uses another cubic kernel) keeps features identical.
"""

import jax.numpy as jnp
import numpy as np


def _cubic(x: np.ndarray, a: float = -0.75) -> np.ndarray:
  x = np.abs(x)
  return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                  np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def interp_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
  """(n_out, n_in) weights: out = W @ in along one axis, for 'bilinear' or 'bicubic'."""
  src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
  rows = np.arange(n_out)
  w = np.zeros((n_out, n_in))
  if method == "bilinear":
    src = np.maximum(src, 0.0)
    lo = np.minimum(np.floor(src).astype(int), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    np.add.at(w, (rows, lo), 1 - frac)
    np.add.at(w, (rows, hi), frac)
  elif method == "bicubic":
    base = np.floor(src)
    for tap in range(-1, 3):
      idx = base + tap
      np.add.at(w, (rows, np.clip(idx, 0, n_in - 1).astype(int)), _cubic(src - idx))
  else:
    raise ValueError(f"unknown interpolation {method!r}; use 'bilinear' or 'bicubic'.")
  return w.astype(np.float32)


def resize_hw(x: jnp.ndarray, height: int, width: int, method: str) -> jnp.ndarray:
  """Resizes (B, H, W, C) or (H, W, C) arrays over their two spatial axes."""
  h, w = x.shape[-3:-1]
  if (h, w) == (height, width):
    return x
  wh, ww = interp_matrix(h, height, method), interp_matrix(w, width, method)
  return jnp.einsum("Hh,...hwc,Ww->...HWc", wh, x, ww, precision="highest")
