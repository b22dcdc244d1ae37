"""The loop against the laws of collapse (collapse_jax.study.theory), by Monte Carlo over fresh
seeds: whole recursive runs of the closed-form generators, pictures off."""

import os
import sys

import numpy as np
import pytest

from collapse_jax.data import load_dataset
from collapse_jax.images import to_uint8
from collapse_jax.loop.recursive import run_recursive
from collapse_jax.study import theory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "configs"))
import theory as theory_config  # noqa: E402


def runs(variant: str, num: int, root, seed: int, data=None,
         **loop) -> tuple[int, list[list[dict]]]:
  """(first seed, rows of `num` runs on seeds from `seed` on); each run's real set is drawn
  on its own seed too. `data` and `loop` override fields of config.data and config.loop."""
  base = seed % 10**6
  out = []
  for s in range(base, base + num):
    config = theory_config.get_config(variant)
    config.seed = s
    config.data.seed = s
    config.loop.pictures = False
    config.loop.n_heldout = 0
    for k, v in loop.items():
      config.loop[k] = v
    for k, v in (data or {}).items():
      config.data[k] = v
    out.append(run_recursive(config, str(root / str(s))))
  return base, out


def series(rows_by_run, key) -> np.ndarray:
  return np.array([[r[key] for r in rows] for rows in rows_by_run])


@pytest.mark.slow
def test_gaussian_entropy_follows_the_wishart_law(tmp_path, seed):
  n, d = 10, 2
  base, rows = runs("gaussian", 40, tmp_path, seed, n_train=n)
  h = series(rows, "model_entropy")
  steps = np.diff(h, axis=1).ravel()  # 40 runs x 7 generation steps
  want = theory.wishart_entropy_change(n, d)
  se = steps.std(ddof=1) / np.sqrt(steps.size)
  assert abs(steps.mean() - want) < 4 * se, (base, steps.mean(), want, se)
  # sharp: the law of a loop that fitted 2n rows lies ~7 SE away, outside the window
  assert abs(steps.mean() - theory.wishart_entropy_change(2 * n, d)) > 4 * se
  # the mean's random walk: E[|mu_{g+1}|^2 - |mu_g|^2] = tr(Sigma_g) / n
  m2, tr = series(rows, "model_mean_sq"), series(rows, "model_trace")
  ratio = (np.diff(m2, axis=1) / theory.mean_step_variance(tr[:, :-1], n)).ravel()
  se = ratio.std(ddof=1) / np.sqrt(ratio.size)
  assert abs(ratio.mean() - 1) < 4 * se, (base, ratio.mean(), se)


@pytest.mark.slow
def test_gaussian_mean_error_bounded_when_accumulating_unbounded_when_replacing(tmp_path, seed):
  # d = 32 isotropic: |mu|^2 sums 32 terms, so 12 runs pin its mean to ~7% (a NumPy
  # simulation of this test's checks failed none of 300 repeats)
  n, d, num, g = 50, 32, 12, 8
  data = {"dim": d, "decay": 0.0}
  base, acc = runs("gaussian", num, tmp_path / "acc", seed, data, n_train=n, generations=g,
                   paradigm="accumulate_all")
  _, rep = runs("gaussian", num, tmp_path / "rep", seed, data, n_train=n, generations=g)
  assert [r["train_size"] for r in acc[0]] == [n * (i + 1) for i in range(g)]
  acc, rep = series(acc, "model_mean_sq"), series(rep, "model_mean_sq")
  se = lambda x: x.std(ddof=1) / np.sqrt(len(x))
  bound = theory.accumulate_mean_error(float(d), n, g)  # <= pi^2/6 d / n at every g
  assert acc[:, -1].mean() < bound + 3 * se(acc[:, -1]), (base, acc.mean(0), bound)
  late = acc[:, -1] - acc[:, g // 2 - 1]  # the bounded sum adds ~0.1 d / n after g/2
  assert late.mean() < 0.25 * d / n + 3 * se(late), (base, acc.mean(0))
  # replace: a random walk, past what accumulation reaches at any generation, still growing
  assert rep[:, -1].mean() - 3 * se(rep[:, -1]) > np.pi**2 / 6 * d / n, (base, rep.mean(0))
  grow = rep[:, -1] - rep[:, g // 2 - 1]  # ~3.6 d / n expected
  assert grow.mean() > 0, (base, rep.mean(0))


@pytest.mark.slow
def test_memorizer_unique_copies_follow_wright_fisher(tmp_path, seed):
  n, g, num = 64, 5, 24
  base, rows = runs("memorizer", num, tmp_path, seed, n_train=n, generations=g)
  got = series(rows, "unique_copied")
  assert series(rows, "gen_score").max() == 0.0  # every sample is an exact copy
  # the first training set's types: its rows, equal rows being one type (digits has some)
  config = theory_config.get_config("memorizer")
  images = to_uint8(load_dataset(config).images)
  want = []
  for s in range(base, base + num):
    real = images[np.random.default_rng(s).permutation(len(images))[:n]]
    types = np.unique(real.reshape(n, -1), axis=0, return_inverse=True)[1].ravel()
    want.append(theory.wright_fisher_unique(types, g, 4000, np.random.default_rng(s)).mean(0))
  want = np.mean(want, axis=0)
  if len(np.unique(images[:n].reshape(n, -1), axis=0)) == n:
    assert abs(want[0] - (1 - (1 - 1 / n) ** n)) < 0.003
  se = got.std(axis=0, ddof=1) / np.sqrt(num)
  assert np.all(np.abs(got.mean(0) - want) < 4 * se + 1e-3), (base, got.mean(0), want, se)
  assert got.mean(0)[-1] < 0.5 * got.mean(0)[0]  # and it is collapse: copies of ever fewer


@pytest.mark.slow
def test_kde_total_variance_grows_by_d_bandwidth_squared(tmp_path, seed):
  n, d, h = 1000, 2, 0.3
  base, rows = runs("kde", 16, tmp_path, seed, n_train=n, generations=6, gen_score_samples=100)
  v = series(rows, "pixel_variance")  # the pool's unbiased total variance = next training set's
  resid = (v[:, 1:] - theory.kde_variance_next(v[:, :-1], n, d, h)).ravel()
  se = resid.std(ddof=1) / np.sqrt(resid.size)
  assert abs(resid.mean()) < 4 * se, (base, resid.mean(), se)
  growth = np.diff(v, axis=1).mean()
  assert abs(growth - d * h**2) < 0.25 * d * h**2, (base, growth)


def test_memorizer_copy_frac_is_one_at_every_generation(tmp_path, seed):
  """Every memorizer sample is an exact copy: copy_frac, on the real data's fixed scale, is
  1 at each generation, while the ratio test (memorized_frac) falls as the training set
  fills with duplicates (the defect copy_frac exists for)."""
  config = theory_config.get_config("memorizer")
  config.seed = seed % 10**6
  config.loop.pictures = False
  config.loop.generations = 4
  config.loop.n_train = 64
  rows = run_recursive(config, str(tmp_path))
  assert [r["copy_frac"] for r in rows] == [1.0] * 4
  assert all(r["copy_threshold"] > 0 for r in rows)
  assert rows[-1]["memorized_frac"] < rows[0]["memorized_frac"]
