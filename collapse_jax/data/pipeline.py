"""Deterministic, random-access batches of example indices over an in-memory dataset.

Batch `s` is a pure function of (seed, s): resuming at step s replays the same data order,
so the pipeline's checkpoint is the step number alone. Each epoch is a fresh permutation
(the last incomplete batch of an epoch is dropped). The indices are computed with NumPy, one
permutation per epoch: grain's per-element random access cost 8.6 ms per batch of 64 on the
2-core CPU, a quarter of a digits train step. Each process reads only its own slice of the
global batch.
"""

import jax
import numpy as np


class BatchIndices:
  """`batches[s]` is global batch s: int32 example indices."""

  def __init__(self, num_examples: int, global_batch: int, seed: int):
    if num_examples < global_batch:
      raise ValueError(
          f"config.batch_size={global_batch} exceeds the {num_examples} training examples; "
          "lower config.batch_size."
      )
    self.num_examples, self.global_batch, self.seed = num_examples, global_batch, seed
    self.per_epoch = num_examples // global_batch
    self._epoch = (-1, None)

  def _permutation(self, epoch: int) -> np.ndarray:
    if self._epoch[0] != epoch:
      perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
      self._epoch = (epoch, perm[: self.per_epoch * self.global_batch].astype(np.int32))
    return self._epoch[1]

  def __getitem__(self, step: int) -> np.ndarray:
    epoch, i = divmod(int(step), self.per_epoch)
    b = self.global_batch
    return self._permutation(epoch)[i * b : (i + 1) * b]


def make_batch_dataset(num_examples: int, global_batch: int, seed: int) -> BatchIndices:
  """Infinite, per-epoch reshuffled batches of example indices."""
  return BatchIndices(num_examples, global_batch, seed)


def batch_at_step(
    dataset: BatchIndices, arrays: dict[str, np.ndarray], step: int
) -> dict[str, np.ndarray]:
  """This process's slice of global batch `step`, gathered from host arrays."""
  idx = np.asarray(dataset[step])
  per_process = len(idx) // jax.process_count()
  start = jax.process_index() * per_process
  idx = idx[start : start + per_process]
  return {k: v[idx] for k, v in arrays.items()}
