"""The generator interface of the self-consuming loop: train on a set, sample n from it.

A generator is built once per run (`generators.make_generator`) with the config, the shape
and classes of the data, and the mesh; the loop then calls only `fit` and `sample`. Sets
are the loop's rows (uint8 images or float32 vectors, global arrays split by rows over the
mesh); a generator works in model space ([-1, 1] for images, the raw values for vectors)
and returns its samples in the stored form.
"""

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.data.sets import ImageSet
from collapse_jax.images import from_uint8, to_uint8


@dataclasses.dataclass(frozen=True)
class Fitted:
  """A trained generator: what `sample` needs, and scalars for the generation's metric row
  (e.g. the fitted Gaussian's `model_entropy`)."""

  state: Any
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)


class Generator(Protocol):
  conditional: bool  # sample() takes one label per sample; fit() reads data.labels

  def fit(self, data: ImageSet, key: jax.Array, *, generation: int, workdir: str,
          log_prefix: str = "") -> Fitted:
    """Trains generation `generation` (1-based) on `data`; `workdir` is the run's directory
    (a generator that checkpoints keeps its files under workdir/gen_XX)."""

  def sample(self, fitted: Fitted, key: jax.Array, n: int,
             labels: np.ndarray | None = None) -> jax.Array:
    """n samples in the stored form of the data, a global array split by rows."""


def to_model(rows) -> jax.Array:
  """Stored rows -> model space: uint8 images to [-1, 1], vectors as they are (float32)."""
  return from_uint8(rows) if rows.dtype == jnp.uint8 else jnp.asarray(rows, jnp.float32)


def to_stored(x: jax.Array, image: bool) -> jax.Array:
  """Model-space samples -> stored rows: images quantised to uint8, vectors float32."""
  return to_uint8(x) if image else x.astype(jnp.float32)


def flat(x: jax.Array) -> jax.Array:
  """(n, ...) -> (n, prod(...)): closed-form generators work on flattened rows."""
  return x.reshape(x.shape[0], -1)
