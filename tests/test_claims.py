"""Claim checkers on synthetic sweeps whose answer is known, against NumPy/SciPy."""

import numpy as np
from scipy import stats

from collapse_jax.study import claims


def _runs(field, value, series, key, seeds=3, **extra):
  """Seed-indexed runs whose `key` follows `series` plus seed-sized noise."""
  out = []
  for s in range(seeds):
    rows = [{"generation": g + 1, "seed": s, key: v + 0.01 * s, **extra}
            for g, v in enumerate(series)]
    out.append(rows)
  return {((field, value),): out}


def test_section3_smaller_n_falls_faster_and_r():
  cells = {}
  for n, end in ((64, 100.0), (128, 300.0), (256, 600.0)):
    cells |= _runs("loop.n_train", str(n), [800.0, 500.0, end], "gen_score")
  for runs in cells.values():
    for rows in runs:
      for r in rows:
        r["train_entropy"] = np.log(r["gen_score"]) * 10 + 5
  got = claims.section3(cells)
  assert [c.holds for c in got] == [True, True]
  assert "N=64: 0.125" in got[0].measured
  assert got[1].measured.startswith("r = 1 ")


def test_reservoir_floor_rises_with_lambda_and_zero_keeps_falling(rng):
  cells = {}
  for lam, series in ((0.0, [340, 300, 260, 220]), (0.5, [340, 320, 315, 314])):
    runs = []
    for s in range(3):
      rows = [{"generation": g + 1, "seed": s, "train_entropy": v + rng.normal(0, 1)}
              for g, v in enumerate(series)]
      runs.append(rows)
    cells[(("loop.fresh_fraction", str(lam)),)] = runs
  got = claims.reservoir(cells)
  assert [c.holds for c in got] == [True, True, True]
  zero, half = (cells[(("loop.fresh_fraction", v),)] for v in ("0.0", "0.5"))

  def t_interval(values):
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                              scale=stats.sem(values))
    return f"[{lo:.4g}, {hi:.4g}]"

  steps = [[r[-1]["train_entropy"] - r[-2]["train_entropy"] for r in runs]
           for runs in (zero, half)]
  assert t_interval(steps[0]) in got[1].measured
  assert got[2].measured.endswith(t_interval(np.subtract(steps[1], steps[0])))
  floors = np.subtract(*([r[-1]["train_entropy"] for r in runs] for runs in (half, zero)))
  assert t_interval(floors) in got[0].measured
  # Means in order but one seed against it: the paired step's interval spans 0.
  cells[(("loop.fresh_fraction", "0.6"),)] = [
      [dict(r, train_entropy=r["train_entropy"] + d) for r in rows]
      for rows, d in zip(half, (20.0, 15.0, -25.0), strict=True)]
  got = claims.reservoir(cells)
  assert [c.holds for c in got] == [False, True, True]


def test_paired_differences_decide_accumulate_and_selection(rng):
  cells = _runs("loop.paradigm", "replace", [800, 400, 200], "gen_score", fd_real=9.0)
  cells |= _runs("loop.paradigm", "accumulate", [800, 700, 650], "gen_score", fd_real=3.0)
  assert [c.holds for c in claims.accumulate(cells)] == [True, True]
  sel = {}
  for name, entropy, score in (("none", 250.0, 100.0), ("random", 255.0, 110.0),
                               ("greedy", 300.0, 260.0), ("threshold", 240.0, 95.0)):
    cell = _runs("loop.selection", name, [340.0, entropy], "train_entropy")
    for rows in next(iter(cell.values())):
      rows[-1]["gen_score"] = score + rng.normal(0, 1)
    sel |= cell
  got = claims.selection(sel)
  assert [c.holds for c in got] == [True] * 4 + [False] * 4
  assert [c.text for c in got[:3]] == [
      "greedy keeps the training-set entropy above vanilla",
      "greedy keeps the training-set entropy above random selection",
      "greedy keeps the generalization score above vanilla"]
  greedy, random = (sel[(("loop.selection", v),)] for v in ("greedy", "random"))
  diffs = [g[-1]["gen_score"] - r[-1]["gen_score"] for g, r in zip(greedy, random, strict=True)]
  lo, hi = stats.t.interval(0.95, 2, loc=np.mean(diffs), scale=stats.sem(diffs))
  assert got[3].measured.endswith(f"[{lo:.4g}, {hi:.4g}]")
  # Quality in every FD space measured: greedy's pixel FD below vanilla's at every seed, its
  # learned-space FD above; its probe lower at every seed (not "no lower"), threshold's equal.
  for name, fd, fd_learned, probe in (("none", 90.0, 200.0, 0.7), ("random", 90.0, 200.0, 0.7),
                                      ("greedy", 80.0, 280.0, 0.6),
                                      ("threshold", 95.0, 190.0, 0.7)):
    for rows, tie in zip(sel[(("loop.selection", name),)], (0.01, -0.01, 0.005), strict=True):
      # threshold's probe: +-0.01 around vanilla's, its paired interval straddling 0
      rows[-1] |= {"fd_real": fd + rng.normal(0, 1), "fd_learned": fd_learned + rng.normal(0, 1),
                   "probe_conf": probe + (tie if name == "threshold" else rng.normal(0, 1e-4))}
  quality = {c.text: c.holds for c in claims.selection(sel) if c.text.startswith("quality")}
  assert quality == {
      "quality: greedy keeps fd_real below vanilla's": True,
      "quality: greedy keeps fd_learned below vanilla's": False,
      "quality: greedy keeps probe_conf no lower than vanilla's (its interval reaches 0 or "
      "above)": False,
      "quality: threshold keeps fd_real below vanilla's": False,
      "quality: threshold keeps fd_learned below vanilla's": True,
      "quality: threshold keeps probe_conf no lower than vanilla's (its interval reaches 0 or "
      "above)": True}


def _gaussian_chains(num, n, d, g, rng, shift=0.0):
  """Rows of `num` NumPy replace chains of the fitted Gaussian (entropy + shift per step)."""
  runs = []
  for s in range(num):
    x, rows = rng.normal(size=(n, d)), []
    for gen in range(g):
      mu, cov = x.mean(0), np.cov(x.T, bias=True)
      rows.append({"generation": gen + 1, "seed": s, "train_size": n, "pixel_dim": d,
                   "model_entropy": stats.multivariate_normal(mu, cov).entropy() + shift * gen,
                   "model_mean_sq": mu @ mu, "model_trace": np.trace(cov)})
      x = rng.multivariate_normal(mu, cov, size=n)
    runs.append(rows)
  return {(("loop.n_train", str(n)),): runs}


def test_wishart_claim_is_the_law_inside_the_interval(rng):
  cells = _gaussian_chains(30, 12, 2, 6, rng)
  runs = cells[(("loop.n_train", "12"),)]
  steps = np.concatenate([np.diff([r["model_entropy"] for r in rows]) for rows in runs])
  lo, hi = stats.t.interval(0.95, steps.size - 1, loc=steps.mean(), scale=stats.sem(steps))
  got = claims.wishart(cells)
  assert f"[{lo:.4g}, {hi:.4g}]" in got[0].measured and "over 150 steps" in got[0].measured
  from collapse_jax.study.theory import wishart_entropy_change

  assert got[0].holds == (lo <= wishart_entropy_change(12, 2) <= hi)
  walk = np.concatenate([np.diff([r["model_mean_sq"] for r in rows]) * 12
                         / np.array([r["model_trace"] for r in rows[:-1]]) for rows in runs])
  lo, hi = stats.t.interval(0.95, walk.size - 1, loc=walk.mean(), scale=stats.sem(walk))
  assert got[1].holds == (lo <= 1 <= hi) and f"[{lo:.4g}, {hi:.4g}]" in got[1].measured
  # an entropy that falls 1 nat per generation more than the law: does not hold
  assert not claims.wishart(_gaussian_chains(30, 12, 2, 6, rng, shift=-1.0))[0].holds
