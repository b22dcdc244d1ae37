"""Images in [-1, 1] to uint8 grids saved as PNG."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image


def _xp(images):
  """jnp for device arrays (kept on the devices, also under jit), numpy otherwise."""
  return jnp if isinstance(images, jax.Array) else np


def to_uint8(images):
  """[-1, 1] float -> [0, 255] uint8 (same bits from numpy and jax)."""
  xp = _xp(images)
  return xp.clip(xp.round((xp.asarray(images) + 1.0) * 127.5), 0, 255).astype(xp.uint8)


def from_uint8(images):
  """[0, 255] uint8 -> [-1, 1] float32 (the inverse of `to_uint8`)."""
  xp = _xp(images)
  return xp.asarray(images).astype(xp.float32) / 127.5 - 1.0


def make_grid(images: np.ndarray, ncol: int | None = None, pad: int = 1) -> np.ndarray:
  """(N, H, W, C) in [-1, 1] -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) uint8 image."""
  images = to_uint8(images)
  n, h, w, c = images.shape
  ncol = ncol or math.ceil(math.sqrt(n))
  nrow = math.ceil(n / ncol)
  grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
  for i, img in enumerate(images):
    r, col = divmod(i, ncol)
    grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) :][:, :w] = img
  return grid


def save_grid(images: np.ndarray, path: str, ncol: int | None = None, scale: int = 1) -> None:
  """Saves a grid PNG; `scale` upsamples small images (8x8 digits) for viewing."""
  grid = make_grid(images, ncol)
  if scale > 1:
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
  if grid.shape[-1] == 1:
    grid = grid[..., 0]
  Image.fromarray(grid).save(path)
