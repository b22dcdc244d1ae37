"""Dataset lookup by config name; every loader reads local data only."""

import dataclasses

import numpy as np

from collapse_jax.data.digits import load_digits


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Images in [-1, 1] (N, H, W, C) float32 and optional int labels (N,)."""

  images: np.ndarray
  labels: np.ndarray | None
  num_classes: int


def _digits(config) -> Dataset:
  del config
  images, labels = load_digits()
  return Dataset(images=images, labels=labels, num_classes=10)


def _needs_local_path(name: str):
  def load(config) -> Dataset:
    path = config.data.get("path", "") or "<unset>"
    raise FileNotFoundError(
        f"config.data.name={name!r} needs prepared local data, but its loader is not in "
        f"this version yet (config.data.path={path}). Use config.data.name='digits', "
        "the embedded default, until the real-data loaders land."
    )

  return load


_LOADERS = {
    "digits": _digits,
    "mnist": _needs_local_path("mnist"),
    "cifar10": _needs_local_path("cifar10"),
    "ffhq": _needs_local_path("ffhq"),
}


def load_dataset(config) -> Dataset:
  """Loads `config.data.name`, optionally keeping the first `config.data.max_examples`."""
  name = config.data.name
  if name not in _LOADERS:
    raise ValueError(f"config.data.name={name!r} is unknown; choose one of {sorted(_LOADERS)}.")
  ds = _LOADERS[name](config)
  limit = config.data.get("max_examples", 0)
  if limit:
    labels = None if ds.labels is None else ds.labels[:limit]
    ds = dataclasses.replace(ds, images=ds.images[:limit], labels=labels)
  return ds
