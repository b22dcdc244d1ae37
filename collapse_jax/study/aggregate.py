"""Statistics over seeds: per grid cell and generation, the mean and 95% confidence interval
of every metric, and the correlation of training-set entropy with log generalization score
(Pearson r with a bootstrap interval, the paper's section-3 figure r = 0.91)."""

import dataclasses
import math

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class Estimate:
  mean: float
  lo: float
  hi: float
  n: int


def shown(e: Estimate, direction: str) -> bool:
  """Whether a paired difference's interval decides `direction`: 'higher' when it lies above
  0, 'lower' when below, 'no lower' when its upper end reaches 0 (not shown worse)."""
  return bool({"higher": e.lo > 0, "lower": e.hi < 0, "no lower": e.hi >= 0}[direction])


def mean_ci(values, confidence: float = 0.95) -> Estimate:
  """Mean and Student-t confidence interval of the finite values (NaN bounds below 2)."""
  v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
  if v.size == 0:
    return Estimate(math.nan, math.nan, math.nan, 0)
  mean = float(v.mean())
  if v.size < 2:
    return Estimate(mean, math.nan, math.nan, 1)
  half = stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
  return Estimate(mean, mean - half, mean + half, int(v.size))


def pearson_bootstrap(x, y, n_boot: int = 10_000, confidence: float = 0.95,
                      seed: int = 0) -> Estimate:
  """Pearson r of the pairs and its percentile bootstrap interval (pairs resampled)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  keep = np.isfinite(x) & np.isfinite(y)
  x, y = x[keep], y[keep]
  if x.size < 3:
    return Estimate(math.nan, math.nan, math.nan, int(x.size))
  r = float(np.corrcoef(x, y)[0, 1])
  idx = np.random.default_rng(seed).integers(0, x.size, (n_boot, x.size))
  xb, yb = x[idx], y[idx]
  xc, yc = xb - xb.mean(1, keepdims=True), yb - yb.mean(1, keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    rb = (xc * yc).sum(1) / np.sqrt((xc**2).sum(1) * (yc**2).sum(1))
  rb = rb[np.isfinite(rb)]
  alpha = (1 - confidence) / 2
  lo, hi = np.quantile(rb, [alpha, 1 - alpha])
  return Estimate(r, float(lo), float(hi), int(x.size))


def by_generation(runs: list[list[dict]], metric: str) -> dict[int, Estimate]:
  """generation -> mean and interval of `metric` over the runs (seeds) that reached it."""
  values: dict[int, list[float]] = {}
  for rows in runs:
    for r in rows:
      if metric in r:
        values.setdefault(int(r["generation"]), []).append(float(r[metric]))
  return {g: mean_ci(v) for g, v in sorted(values.items())}


def entropy_score_pairs(runs: list[list[dict]], entropy: str = "train_entropy",
                        score: str = "gen_score") -> tuple[np.ndarray, np.ndarray]:
  """(training-set entropy, log generalization score) over every run and generation."""
  pairs = [(r[entropy], math.log(r[score])) for rows in runs for r in rows
           if entropy in r and score in r and r[score] > 0]
  if not pairs:
    return np.zeros(0), np.zeros(0)
  x, y = np.asarray(pairs, np.float64).T
  return x, y
