"""Random-access image sources on local disk: TFDS (mnist, cifar10), IDX files, image
folders and array_record files of encoded images. Each yields {"image": uint8 (H, W, C)[, "label"]}.

Nothing is downloaded: TFDS sets must already be prepared under `data_dir`.
"""

import glob
import io
import os

import numpy as np
from PIL import Image

from collapse_jax.data import idx
from collapse_jax.errors import ConfigError, DataPathError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def tfds_source(name: str, data_dir: str, split: str = "train"):
  """`tfds.data_source` over a prepared local copy (ArrayRecord format; no TensorFlow)."""
  import tensorflow_datasets as tfds

  try:
    return tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
  except Exception as e:  # tfds raises several types for "not prepared here"
    if data_dir and not os.path.isdir(data_dir):  # tfds would report a format clash
      raise DataPathError(
          f"config.data.path={data_dir} does not exist: give the TFDS data_dir that holds a "
          f"prepared {name} (`tfds build {name} --file_format=array_record --data_dir=DIR`)."
      ) from e
    raise DataPathError(
        f"config.data.name={name!r}: no prepared TFDS {name} under config.data.path="
        f"{data_dir or '<default ~/tensorflow_datasets>'} ({type(e).__name__}: {e}). Prepare it "
        f"where there is network (`tfds build {name} --file_format=array_record "
        "--data_dir=DIR`) and point config.data.path at DIR.") from e


def tfds_num_classes(source) -> int:
  label = source.dataset_info.features["label"] if hasattr(source, "dataset_info") else None
  return int(label.num_classes) if label is not None else 0


class IdxSource:
  """One split of an IDX dataset directory (MNIST's file names, `idx.read_idx_split`), read
  whole (IDX files are small) and served by index."""

  def __init__(self, root: str, split: str = "train"):
    self.images, self.labels = idx.read_idx_split(root, split)

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, i: int) -> dict:
    if self.labels is None:
      return {"image": self.images[i]}
    return {"image": self.images[i], "label": self.labels[i]}


class ImageFolderSource:
  """Every image file under `root`, sorted by path. With `labels`, each first-level
  subdirectory is a class (sorted names -> 0, 1, ...)."""

  def __init__(self, root: str, labels: bool = False):
    if not os.path.isdir(root):
      raise DataPathError(f"config.data.path={root} is not a directory of images.")
    self.paths = sorted(p for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
                        if p.lower().endswith(IMAGE_EXTENSIONS))
    if not self.paths:
      raise DataPathError(f"config.data.path={root} holds no {'/'.join(IMAGE_EXTENSIONS)} "
                              "files (searched recursively).")
    self.classes = []
    if labels:
      top = [os.path.relpath(p, root).split(os.sep)[0] for p in self.paths]
      if any(t == os.path.relpath(p, root) for t, p in zip(top, self.paths, strict=True)):
        raise ConfigError(f"config.data.labels=True needs every image of {root} inside a class "
                         "subdirectory; some lie at the top level.")
      self.classes = sorted(set(top))
      index = {c: i for i, c in enumerate(self.classes)}
      self.labels = np.array([index[t] for t in top], np.int32)

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, i: int) -> dict:
    with open(self.paths[i], "rb") as f:
      out = {"image": decode(f.read(), self.paths[i])}
    if self.classes:
      out["label"] = self.labels[i]
    return out


class ArrayRecordImageSource:
  """Records that are encoded image files (PNG/JPEG bytes), from array_record files."""

  def __init__(self, path: str):
    import grain

    files = sorted(glob.glob(os.path.join(path, "*.array_record*")) if os.path.isdir(path)
                   else glob.glob(path))
    if not files:
      raise DataPathError(f"config.data.path={path} matches no .array_record files.")
    try:
      self._source = grain.sources.ArrayRecordDataSource(files)
    except Exception as e:  # noqa: BLE001 (array_record's own errors name no file)
      sizes = ", ".join(f"{f} ({os.path.getsize(f)} bytes)" for f in files[:4])
      raise DataPathError(f"config.data.path={path}: cannot open its array_record files "
                          f"({sizes}{', ...' if len(files) > 4 else ''}): {e}; replace the "
                          "empty or damaged ones.") from e
    self._path = path

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int) -> dict:
    return {"image": decode(self._source[i], f"record {i} of config.data.path={self._path}")}


def decode(data: bytes, where: str = "image") -> np.ndarray:
  """Encoded image bytes -> uint8 RGB (H, W, 3); a file that is not a whole image is a
  DataPathError naming `where` (a path, or a record of an array_record set)."""
  try:
    with Image.open(io.BytesIO(data)) as im:
      return np.asarray(im.convert("RGB"))
  except (OSError, ValueError, SyntaxError) as e:  # PIL: unidentified, truncated, bad header
    raise DataPathError(f"{where} is not a readable image ({type(e).__name__}: {e}); "
                        "remove or replace it.") from e


def resize_square(image: np.ndarray, resolution: int) -> np.ndarray:
  """Centre-crops to a square and resizes to `resolution` (PIL bicubic, antialiased when
  shrinking); 0 keeps the image as it is."""
  if not resolution or image.shape[:2] == (resolution, resolution):
    return image
  h, w = image.shape[:2]
  s = min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  crop = image[top : top + s, left : left + s]
  gray = crop.shape[-1] == 1
  im = Image.fromarray(crop[..., 0] if gray else crop)
  out = np.asarray(im.resize((resolution, resolution), Image.BICUBIC))
  return out[..., None] if gray else out
