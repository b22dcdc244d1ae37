"""Training sets of the self-consuming loop: replace, accumulate, accumulate_all, fresh.

Sets are `data.sets.ImageSet`s (uint8 rows, with where each came from), built by
subsets and unions on the devices.
"""

from collections.abc import Callable

import numpy as np

from collapse_jax.data.sets import ImageSet
from collapse_jax.errors import ConfigError

PARADIGMS = ("replace", "accumulate", "accumulate_all", "fresh")


# select_fn(candidates, n, rng) -> indices into candidates.
SelectFn = Callable[[ImageSet, int, np.random.Generator], np.ndarray]


def even_counts(n: int, num_sources: int) -> list[int]:
  """The authors' even subsample: n split over the sources, the remainder to the first."""
  return [n // num_sources + (i < n % num_sources) for i in range(num_sources)]


def next_training_set(
    paradigm: str,
    *,
    current: ImageSet,
    real: ImageSet,
    pools: list[ImageSet],
    n: int,
    select: SelectFn,
    vanilla: bool,
    fresh_fraction: float,
    rng: np.random.Generator,
) -> ImageSet:
  """The training set of the next generation, from the pools generated so far.

  replace: n selected from the newest pool. accumulate: n kept fixed; vanilla draws an even
  subsample of real and every generation (the authors' rule), selection picks n from
  real + all generated. accumulate_all: the current set plus n selected from the newest pool
  (grows every generation). fresh: round(fresh_fraction * n) random real images plus the
  rest selected from the newest pool.
  """
  newest = pools[-1]
  if paradigm == "replace":
    return newest.take(select(newest, n, rng))
  if paradigm == "accumulate":
    sources = [real, *pools]
    if vanilla:
      parts = [s.take(rng.choice(len(s), c, replace=False))
               for s, c in zip(sources, even_counts(n, len(sources)), strict=True)]
      return ImageSet.concat(parts)
    union = ImageSet.concat(sources)
    return union.take(select(union, n, rng))
  if paradigm == "accumulate_all":
    return ImageSet.concat([current, newest.take(select(newest, n, rng))])
  if paradigm == "fresh":
    n_real = int(round(fresh_fraction * n))
    parts = [real.take(rng.choice(len(real), n_real, replace=False))]
    if n - n_real:
      parts.append(newest.take(select(newest, n - n_real, rng)))
    return ImageSet.concat(parts)
  raise ConfigError(f"config.loop.paradigm={paradigm!r}; use one of {PARADIGMS}.")
