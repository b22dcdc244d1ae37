"""IDX files (the MNIST format, also Fashion-MNIST's and KMNIST's), read from local disk.

A file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), the
dimensions as big-endian int32, then the array in C order, big-endian; `.gz` files are read
through gzip. A dataset directory holds `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`,
the names MNIST ships under.
"""

import gzip
import os

import numpy as np

from collapse_jax.errors import DataPathError

# IDX type code -> big-endian numpy dtype (the format's table)
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLITS = {"train": "train", "test": "t10k", "t10k": "t10k"}


def read_idx(path: str) -> np.ndarray:
  """The array stored in IDX file `path` (native byte order); a file whose header or length
  does not match is a DataPathError naming it."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as e:  # gzip: truncated stream, not a gzip file
    raise DataPathError(f"{path} is not a readable IDX file ({type(e).__name__}: {e}); "
                        "replace it with an intact copy.") from e
  if len(data) < 4 or data[0] or data[1] or data[2] not in DTYPES:
    raise DataPathError(f"{path} is not an IDX file (its magic bytes are {data[:4].hex()}, "
                        "expected 0000TTNN with type TT in 08/09/0b/0c/0d/0e).")
  ndim = data[3]
  dims = tuple(int(d) for d in np.frombuffer(data, ">i4", ndim, offset=4))
  dtype = np.dtype(DTYPES[data[2]])
  start = 4 + 4 * ndim
  if len(data) - start != int(np.prod(dims)) * dtype.itemsize:
    raise DataPathError(f"{path}: its header says {dims} of {dtype.name} "
                        f"({int(np.prod(dims)) * dtype.itemsize} bytes) but {len(data) - start} "
                        "bytes follow; the file is truncated or damaged, replace it.")
  return np.frombuffer(data, dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


def _find(root: str, stem: str) -> str | None:
  for name in (stem, f"{stem}.gz"):
    if os.path.exists(os.path.join(root, name)):
      return os.path.join(root, name)
  return None


def read_idx_split(root: str, split: str = "train") -> tuple[np.ndarray, np.ndarray | None]:
  """(uint8 images (N, H, W, 1), int32 labels or None) of one split of an IDX dataset
  directory (MNIST's file names; the labels file is optional)."""
  if split not in SPLITS:
    raise DataPathError(f"config.data.split={split!r}: an IDX dataset has the splits "
                        f"{sorted(SPLITS)}.")
  if not os.path.isdir(root):
    raise DataPathError(f"config.data.path={root} is not a directory of IDX files.")
  prefix = SPLITS[split]
  images_path = _find(root, f"{prefix}-images-idx3-ubyte")
  if images_path is None:
    raise DataPathError(f"config.data.path={root} holds no {prefix}-images-idx3-ubyte[.gz] "
                        f"(the MNIST file name of the {split!r} split).")
  images = read_idx(images_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise DataPathError(f"{images_path} holds {images.dtype} {images.shape}; IDX images are "
                        "uint8 (N, H, W).")
  labels_path = _find(root, f"{prefix}-labels-idx1-ubyte")
  if labels_path is None:
    return images[..., None], None
  labels = read_idx(labels_path)
  if labels.shape != images.shape[:1]:
    raise DataPathError(f"{labels_path} has {labels.shape} labels for {len(images)} images "
                        f"of {images_path}.")
  return images[..., None], labels.astype(np.int32)
