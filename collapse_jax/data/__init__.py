"""Datasets as in-memory arrays (images in [-1, 1], NHWC; vectors (N, d)), plus the batch
pipeline."""

from collapse_jax.data.digits import load_digits
from collapse_jax.data.pipeline import batch_at_step, make_batch_dataset
from collapse_jax.data.registry import Dataset, load_dataset

__all__ = ["Dataset", "batch_at_step", "load_dataset", "load_digits", "make_batch_dataset"]
