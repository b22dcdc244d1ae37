"""A deterministic, random-access batch pipeline (grain) over an in-memory dataset.

Batch `s` is a pure function of (seed, s): resuming at step s replays the same data order,
so the pipeline's checkpoint is the step number alone. Each process reads only its own
slice of the global batch.
"""

import grain
import jax
import numpy as np


def make_batch_dataset(num_examples: int, global_batch: int, seed: int) -> grain.MapDataset:
  """Infinite, per-epoch reshuffled batches of example indices."""
  if num_examples < global_batch:
    raise ValueError(
        f"config.batch_size={global_batch} exceeds the {num_examples} training examples; "
        "lower config.batch_size."
    )
  return (
      grain.MapDataset.range(num_examples)
      .seed(seed)
      .shuffle()
      .repeat(None)
      .batch(global_batch, drop_remainder=True)
  )


def batch_at_step(
    dataset: grain.MapDataset, arrays: dict[str, np.ndarray], step: int
) -> dict[str, np.ndarray]:
  """This process's slice of global batch `step`, gathered from host arrays."""
  idx = np.asarray(dataset[step])
  per_process = len(idx) // jax.process_count()
  start = jax.process_index() * per_process
  idx = idx[start : start + per_process]
  return {k: v[idx] for k, v in arrays.items()}
