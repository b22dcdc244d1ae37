"""The loop's selection step: which rows of a candidate pool become the next training set
(config.loop.selection: none, random, greedy, threshold; within each class when asked)."""

import jax
import numpy as np

from collapse_jax.data.sets import ImageSet
from collapse_jax.kernels.selection import greedy_select, threshold_decay_select
from collapse_jax.sharding import take_rows, to_host


def make_select_fn(lc, mesh, embed):
  """select(candidates, n, rng) -> indices, by config.loop.selection (within each class);
  `embed(images)` gives the features whose distances the selection spreads. The candidates
  are embedded once; per-class selections take their rows of those features."""

  def select_flat(x, size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if lc.selection == "none":
      return np.arange(n)
    if lc.selection == "random":
      return rng.choice(size, n, replace=False)
    if lc.selection == "greedy":
      return to_host(greedy_select(x, n, start=int(rng.integers(size)), mesh=mesh))
    key = jax.random.key(int(rng.integers(2**31)))
    return to_host(threshold_decay_select(
        x, n, lc.tau0, lc.decay, key=key, decay_every_pass=lc.decay_every_pass, mesh=mesh))

  def select(cands: ImageSet, n: int, rng: np.random.Generator) -> np.ndarray:
    x = embed(cands.images) if lc.selection in ("greedy", "threshold") else None
    if cands.labels is None or not lc.select_per_class:
      return select_flat(x, len(cands), n, rng)
    classes = np.unique(cands.labels)
    out = []
    for i, c in enumerate(classes):
      members = np.flatnonzero(cands.labels == c)
      want = min(n // len(classes) + (i < n % len(classes)), len(members))
      rows = None if x is None else take_rows(x, members)
      out.append(members[select_flat(rows, len(members), want, rng)])
    return np.concatenate(out)

  return select
