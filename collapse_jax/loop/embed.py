"""Feature spaces of the loop: raw pixels, DINOv2 CLS, FID Inception pool3, and the learned
space (a small CNN trained on the held-out real images, encoders/learned.py).

`Embedder` maps uint8 images to rows in a named space (uint8 pixels, float encoder
features). Encoders load lazily from
the local paths in the config (nothing is downloaded); features of the fixed real set are
cached in the workdir, keyed by a fingerprint of the images, so a resumed run or a second
experiment on the same data skips them.
"""

import dataclasses
import hashlib
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from collapse_jax.encoders.extract import Encoder, extract
from collapse_jax.encoders.learned import train_learned_encoder
from collapse_jax.encoders.load import load_encoder
from collapse_jax.metrics.collapse import gaussian_stats
from collapse_jax.sharding import put_rows, to_host

log = logging.getLogger(__name__)

SPACES = ("pixels", "dinov2", "inception", "learned")


def pixels(images):
  """Flattened pixels on the paper's 0-255 scale, in the images' dtype: uint8 images give
  uint8 rows (a quarter of float32's bytes on every device; the kernels read them exactly),
  vector data its float32 rows. Device arrays stay on the devices."""
  return images.reshape(images.shape[0], -1)


@jax.jit
def _checksum(x: jax.Array) -> jax.Array:
  """Two position-weighted sums mod 2^32 of all elements: equal sets, equal sums, whatever
  the sharding (integer addition wraps and is associative)."""
  v = x.reshape(-1)
  # float rows (vector data) by their bits: a cast would truncate them to equal integers
  v = jax.lax.bitcast_convert_type(v, jnp.uint32) if v.dtype == jnp.float32 else v
  v = v.astype(jnp.uint32)
  i = jnp.arange(v.size, dtype=jnp.uint32)
  w1 = i * jnp.uint32(2654435761) + 1
  w2 = (i ^ (i >> 13)) * jnp.uint32(0x85EBCA6B) | 1
  return jnp.stack([jnp.sum(v * w1), jnp.sum((v + 7) * w2)])


def fingerprint(images) -> str:
  """A short key for a set of images: sha1 of host bytes, a checksum on the devices."""
  if isinstance(images, jax.Array):
    a, b = np.asarray(_checksum(images)).tolist()
    return f"{a:08x}{b:08x}-{images.shape[0]}"
  h = hashlib.sha1(str(images.shape).encode())
  h.update(np.ascontiguousarray(images).data)
  return h.hexdigest()[:16]


MEMO_SIZE = 4  # recent feature sets kept: a generation's pool and selected set, and the FID pool


@dataclasses.dataclass
class Embedder:
  """Features of uint8 image sets in the spaces whose weights the config names.

  Encoder features of the last MEMO_SIZE image sets are memoised by fingerprint: within a
  generation the pool is embedded for selection and again for the metrics, and each
  generation's selected set is the next one's training set.
  """

  mesh: Mesh
  dinov2_weights: str = ""
  inception_weights: str = ""
  dtype: str = "float32"
  batch_size: int = 256
  cache_dir: str = ""
  learned: Encoder | None = None  # set by `fit_learned` when the run has labelled held-out rows
  _encoders: dict = dataclasses.field(default_factory=dict)
  _memo: dict = dataclasses.field(default_factory=dict)  # (space, fingerprint) -> features

  @classmethod
  def from_config(cls, config, mesh: Mesh, cache_dir: str = "") -> "Embedder":
    return cls(mesh, config.features_weights, config.eval.fid_weights, config.eval.dtype,
               config.eval.batch_size, cache_dir)

  def _weights(self, space: str) -> str:
    return self.dinov2_weights if space == "dinov2" else self.inception_weights

  def has(self, space: str) -> bool:
    if space == "learned":
      return self.learned is not None
    return space == "pixels" or bool(self._weights(space))

  def fit_learned(self, images: np.ndarray, labels: np.ndarray, seed: int) -> None:
    """Trains (or reads from the workdir cache) the learned space's encoder on held-out real
    images, uint8 on the host (every process loaded them: nothing is gathered), and their
    labels; every process uses process 0's parameters."""
    enc = train_learned_encoder(images, labels, seed, self.cache_dir)
    if jax.process_count() > 1:
      enc = dataclasses.replace(enc, params=multihost_utils.broadcast_one_to_all(enc.params))
    self.learned = enc

  def __call__(self, space: str, images):
    """Features (N, D) of uint8 images (uint8 pixels, float encoder features), split by
    rows like the images."""
    if space == "pixels":
      return pixels(images)
    return self._encoded(space, images, fingerprint(images))

  def _encoded(self, space: str, images, fp: str) -> jax.Array:
    key = (space, fp)
    if key in self._memo:
      self._memo[key] = self._memo.pop(key)  # most recently used last
      return self._memo[key]
    if space == "learned":
      self._encoders[space] = self.learned
    elif space not in self._encoders:
      self._encoders[space] = load_encoder(space, self._weights(space), self.dtype)
    self._memo[key] = extract(self._encoders[space], images, self.mesh, self.batch_size)
    while len(self._memo) > MEMO_SIZE:
      self._memo.pop(next(iter(self._memo)))
    return self._memo[key]

  def _tag(self, space: str) -> str:
    """A space's name in the disk cache: the learned encoder's carries its own key (the
    images, labels and seed it was trained on), as the pretrained ones are fixed."""
    return self.learned.name if space == "learned" else space

  def cached_stats(self, space: str, images) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of a fixed set's features (a dataset's full real split), read
    from or written to the disk cache: one file per set and space, computed once."""
    fp = fingerprint(images)
    name = f"{self._tag(space)}_stats_{fp}.npz"
    path = os.path.join(self.cache_dir, name) if self.cache_dir else ""
    if path and os.path.exists(path):
      with np.load(path) as f:
        log.info("full real split's %s statistics from %s", space, path)
        return f["mean"], f["cov"]
    feats = pixels(images) if space == "pixels" else self._encoded(space, images, fp)
    self._memo.pop((space, fp), None)  # a one-off: not kept beside the loop's sets
    mu, cov = gaussian_stats(feats)
    if path and jax.process_index() == 0:
      os.makedirs(self.cache_dir, exist_ok=True)
      np.savez(f"{path}.tmp.npz", mean=mu, cov=cov)
      os.replace(f"{path}.tmp.npz", path)
    return mu, cov

  def cached(self, space: str, images):
    """Features of a fixed set (the real data), read from or written to the disk cache."""
    if space == "pixels" or not self.cache_dir:
      return self(space, images)
    fp = fingerprint(images)
    path = os.path.join(self.cache_dir, f"{self._tag(space)}_{fp}.npy")
    if os.path.exists(path):
      log.info("real %s features from %s", space, path)
      return put_rows(np.load(path), self.mesh)  # placed as freshly extracted ones are
    feats = self._encoded(space, images, fp)
    host = to_host(feats)  # the real set's features only, for the disk cache
    if jax.process_index() == 0:
      os.makedirs(self.cache_dir, exist_ok=True)
      np.save(f"{path}.tmp.npy", host)
      os.replace(f"{path}.tmp.npy", path)
    return feats
