"""The embedded default dataset: scikit-learn's 1,797 handwritten 8x8 digits.

The images ship inside scikit-learn's wheel, so loading them never touches the network.
"""

import numpy as np
from sklearn import datasets as sk_datasets


def load_digits() -> tuple[np.ndarray, np.ndarray]:
  """Returns (images [1797, 8, 8, 1] float32 in [-1, 1], labels [1797] int32)."""
  bunch = sk_datasets.load_digits()
  images = bunch.images.astype(np.float32)  # integer values in [0, 16]
  images = images / 8.0 - 1.0
  return images[..., None], bunch.target.astype(np.int32)
