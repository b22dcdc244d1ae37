"""Feature spaces of the loop: raw pixels, DINOv2 CLS and FID Inception pool3.

`Embedder` maps uint8 images to float32 rows in a named space. Encoders load lazily from
the local paths in the config (nothing is downloaded); features of the fixed real set are
cached in the workdir, keyed by a fingerprint of the images, so a resumed run or a second
experiment on the same data skips them.
"""

import dataclasses
import hashlib
import logging
import os

import jax
import numpy as np
from jax.sharding import Mesh

from collapse_jax.encoders.extract import extract
from collapse_jax.encoders.load import load_encoder

log = logging.getLogger(__name__)

SPACES = ("pixels", "dinov2", "inception")


def pixels(images: np.ndarray) -> np.ndarray:
  """Flattened pixels on the paper's 0-255 scale (uint8 images in)."""
  return images.reshape(len(images), -1).astype(np.float32)


def fingerprint(images: np.ndarray) -> str:
  h = hashlib.sha1(str(images.shape).encode())
  h.update(np.ascontiguousarray(images).data)
  return h.hexdigest()[:16]


@dataclasses.dataclass
class Embedder:
  """Features of uint8 image sets in the spaces whose weights the config names."""

  mesh: Mesh
  dinov2_weights: str = ""
  inception_weights: str = ""
  dtype: str = "float32"
  batch_size: int = 256
  cache_dir: str = ""
  _encoders: dict = dataclasses.field(default_factory=dict)

  @classmethod
  def from_config(cls, config, mesh: Mesh, cache_dir: str = "") -> "Embedder":
    return cls(mesh, config.features_weights, config.eval.fid_weights, config.eval.dtype,
               config.eval.batch_size, cache_dir)

  def has(self, space: str) -> bool:
    return space == "pixels" or bool(
        self.dinov2_weights if space == "dinov2" else self.inception_weights)

  def __call__(self, space: str, images: np.ndarray) -> np.ndarray:
    if space == "pixels":
      return pixels(images)
    if space not in self._encoders:
      path = self.dinov2_weights if space == "dinov2" else self.inception_weights
      self._encoders[space] = load_encoder(space, path, self.dtype)
    return extract(self._encoders[space], images, self.mesh, self.batch_size)

  def cached(self, space: str, images: np.ndarray) -> np.ndarray:
    """Features of a fixed set (the real data), read from or written to the cache."""
    if space == "pixels" or not self.cache_dir:
      return self(space, images)
    path = os.path.join(self.cache_dir, f"{space}_{fingerprint(images)}.npy")
    if os.path.exists(path):
      log.info("real %s features from %s", space, path)
      return np.load(path)
    feats = self(space, images)
    if jax.process_index() == 0:
      os.makedirs(self.cache_dir, exist_ok=True)
      np.save(f"{path}.tmp.npy", feats)
      os.replace(f"{path}.tmp.npy", path)
    return feats
