"""Seed statistics against SciPy/NumPy on fresh inputs."""

import math

import numpy as np
from scipy import stats

from collapse_jax.study import aggregate


def test_mean_ci_matches_scipy_t_interval(rng):
  for n in (2, 3, 7):
    v = rng.normal(5, 2, n)
    lo, hi = stats.t.interval(0.95, n - 1, loc=v.mean(), scale=stats.sem(v))
    e = aggregate.mean_ci(list(v) + [float("nan")])
    np.testing.assert_allclose([e.mean, e.lo, e.hi], [v.mean(), lo, hi], rtol=1e-12)
    assert e.n == n
  one = aggregate.mean_ci([3.0])
  assert one.mean == 3.0 and math.isnan(one.lo) and one.n == 1


def test_pearson_bootstrap_r_and_interval(rng):
  x = rng.normal(size=60)
  y = 0.8 * x + rng.normal(scale=0.5, size=60)
  e = aggregate.pearson_bootstrap(x, y, n_boot=4000, seed=1)
  np.testing.assert_allclose(e.mean, stats.pearsonr(x, y).statistic, rtol=1e-12)
  # The same percentile bootstrap by a plain loop.
  idx = np.random.default_rng(1).integers(0, 60, (4000, 60))
  rb = [np.corrcoef(x[i], y[i])[0, 1] for i in idx]
  np.testing.assert_allclose([e.lo, e.hi], np.quantile(rb, [0.025, 0.975]), rtol=1e-10)
  assert e.lo < e.mean < e.hi


def test_by_generation_and_pairs_over_runs():
  runs = [[{"generation": 1, "train_entropy": 10.0, "gen_score": math.e},
           {"generation": 2, "train_entropy": 8.0, "gen_score": 1.0}],
          [{"generation": 1, "train_entropy": 12.0, "gen_score": math.e**2}]]
  est = aggregate.by_generation(runs, "train_entropy")
  assert est[1].mean == 11.0 and est[1].n == 2 and est[2].n == 1
  x, y = aggregate.entropy_score_pairs(runs)
  np.testing.assert_allclose(x, [10, 8, 12])
  np.testing.assert_allclose(y, [1, 0, 2])
