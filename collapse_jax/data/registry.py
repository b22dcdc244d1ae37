"""Dataset lookup by config name; every loader reads local data only.

Real sets are read through grain from a random-access source (TFDS, an image folder or
array_record files): each process decodes its contiguous share of the examples with
threads, and the shares are gathered so that every process holds the whole (small) set,
which the loop's selection and metrics need. Images are resized to config.data.resolution.
"""

import dataclasses
import glob
import os

import grain
import jax
import numpy as np
from jax.experimental import multihost_utils

from collapse_jax.data import sources, synthetic
from collapse_jax.data.digits import load_digits
from collapse_jax.errors import ConfigError, DataPathError
from collapse_jax.images import from_uint8


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Images in [-1, 1] (N, H, W, C) float32, or vectors (N, d) float32 as drawn, and
  optional int labels (N,)."""

  images: np.ndarray
  labels: np.ndarray | None
  num_classes: int

  @property
  def is_image(self) -> bool:
    return self.images.ndim == 4


def read_source(source, resolution: int = 0, limit: int = 0, pad_to: int = 0,
                num_threads: int = 16) -> tuple[np.ndarray, np.ndarray | None]:
  """(uint8 images, labels or None) of the first `limit` (0 = all) examples of `source`.

  Images are resized to `resolution` (0 = as stored), then zero-padded to `pad_to` if given.
  Deterministic: the result is in source order whatever the process count.
  """
  n = min(limit, len(source)) if limit else len(source)
  n_proc, rank = jax.process_count(), jax.process_index()
  per = -(-n // n_proc)
  lo, hi = min(n, rank * per), min(n, (rank + 1) * per)

  if hi <= lo:
    raise ConfigError(f"config.data: {n} examples cannot be shared by {n_proc} processes; "
                     "raise config.data.max_examples or check config.data.path.")

  def prepare(ex):
    image = sources.resize_square(np.asarray(ex["image"], np.uint8), resolution)
    if pad_to and image.shape[0] < pad_to:
      p = (pad_to - image.shape[0]) // 2
      image = np.pad(image, ((p, pad_to - image.shape[0] - p),) * 2 + ((0, 0),))
    return {"image": image, "label": np.int32(ex.get("label", -1))}

  ds = grain.MapDataset.source(source)[lo:hi].map(prepare)
  rows = list(ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads)))
  images = np.stack([r["image"] for r in rows])
  labels = np.array([r["label"] for r in rows], np.int32)
  if n_proc > 1:  # equal shares for the gather, then back to n rows in source order
    fill = per - len(rows)
    images = np.concatenate([images, np.zeros((fill, *images.shape[1:]), np.uint8)])
    labels = np.concatenate([labels, np.full(fill, -1, np.int32)])
    images = np.asarray(multihost_utils.process_allgather(images, tiled=True))[:n]
    labels = np.asarray(multihost_utils.process_allgather(labels, tiled=True))[:n]
  return images, (labels if (labels >= 0).all() else None)


def _digits(config) -> Dataset:
  images, labels = load_digits()
  limit = config.data.max_examples or len(images)
  return Dataset(images=images[:limit], labels=labels[:limit], num_classes=10)


def _tfds(name: str, pad_to: int = 0):
  def load(config) -> Dataset:
    d = config.data
    source = sources.tfds_source(name, d.path, d.split)
    images, labels = read_source(source, d.resolution, d.max_examples, pad_to)
    return Dataset(from_uint8(images), labels, sources.tfds_num_classes(source))

  return load


FASHION_MNIST_PATH = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


def _idx_files(default_path: str = "", install: str = ""):
  """An IDX dataset directory (MNIST's file names): config.data.path, else `default_path`.
  Images are resized to config.data.resolution, or (when it is 0) zero-padded to 32 x 32 if
  smaller (28 -> 32, as mnist), so that the UNet halves them evenly."""

  def load(config) -> Dataset:
    d = config.data
    root = d.path or default_path
    if not root:
      raise DataPathError(f"config.data.name={d.name!r} reads IDX files: set config.data.path "
                          "to a directory of {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].")
    if not os.path.isdir(root):
      raise DataPathError(f"config.data.path={root} does not exist{install}; or point "
                          "config.data.path at a directory of its IDX files.")
    source = sources.IdxSource(root, d.split)
    images, labels = read_source(source, d.resolution, d.max_examples,
                                 pad_to=0 if d.resolution else 32)
    classes = int(labels.max()) + 1 if labels is not None else 0
    return Dataset(from_uint8(images), labels, classes)

  return load


def _local_images(config) -> Dataset:
  """A folder of image files, or array_record files of encoded images (config.data.path)."""
  d = config.data
  if not d.path:
    raise DataPathError(
        f"config.data.name={d.name!r} reads local images: set config.data.path to a folder "
        "of PNG/JPEG files or to array_record files of encoded images.")
  if not glob.glob(d.path):
    raise DataPathError(f"config.data.path={d.path} does not exist; point it at the "
                            f"local {d.name} images (nothing is downloaded).")
  if os.path.isdir(d.path) and not glob.glob(os.path.join(d.path, "*.array_record*")):
    source = sources.ImageFolderSource(d.path, labels=d.labels)
  else:  # array_record files: a directory of them, one file, or a glob pattern
    source = sources.ArrayRecordImageSource(d.path)
  images, labels = read_source(source, d.resolution, d.max_examples)
  num_classes = len(getattr(source, "classes", ()))
  return Dataset(from_uint8(images), labels, num_classes)


def _gaussian(config) -> Dataset:
  d = config.data
  points, _ = synthetic.gaussian(d.max_examples or synthetic.DEFAULT_SIZE, d.dim, d.scale,
                                 d.decay, d.seed)
  return Dataset(points, None, 0)


def _mog(config) -> Dataset:
  d = config.data
  points, labels, _ = synthetic.mixture(d.max_examples or synthetic.DEFAULT_SIZE, d.dim,
                                        d.components, d.spread, d.scale, d.seed)
  return Dataset(points, labels, d.components)


_LOADERS = {
    "digits": _digits,
    "mnist": _tfds("mnist", pad_to=32),  # 28x28 -> 32x32 so the UNet halves evenly
    "cifar10": _tfds("cifar10"),
    "fashion_mnist": _idx_files(FASHION_MNIST_PATH, " (Debian ships Fashion-MNIST there: "
                                "`sudo apt-get install dataset-fashion-mnist`)"),
    "idx": _idx_files(),  # MNIST-format files of your own under config.data.path
    "ffhq": _local_images,
    "images": _local_images,
    "gaussian": _gaussian,  # vector data (config.data.dim, ...), drawn from config.data.seed
    "mog": _mog,
}


def load_dataset(config) -> Dataset:
  """Loads `config.data.name`, optionally keeping the first `config.data.max_examples`."""
  name = config.data.name
  if name not in _LOADERS:
    raise ConfigError(f"config.data.name={name!r} is unknown; choose one of {sorted(_LOADERS)}.")
  return _LOADERS[name](config)
