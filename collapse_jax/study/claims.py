"""The source papers' claims, decided on a sweep's runs with intervals over seeds.

Each checker takes the sweep's cells (cell -> runs' metric rows) and returns verdict
Claims; a difference between two arms is taken seed by seed (same seed, same real data),
and a claim of "higher" holds when the 95% interval of that difference lies above zero.
"""

import math

import numpy as np

from collapse_jax.study import aggregate, theory, verdict
from collapse_jax.study.verdict import Claim


def _by(cells, field: str) -> dict[str, list[list[dict]]]:
  """Runs grouped by the value of one grid field (other fields pooled)."""
  out: dict[str, list[list[dict]]] = {}
  for cell, runs in cells.items():
    value = dict(cell).get(field)
    if value is not None:
      out.setdefault(value, []).extend(runs)
  return out


def _last(rows: list[dict], key: str) -> float:
  return float(rows[-1][key]) if rows and key in rows[-1] else math.nan


def _ci(e: aggregate.Estimate) -> str:
  return f"{e.mean:.4g} [{e.lo:.4g}, {e.hi:.4g}]"


def _paired(a: list[list[dict]], b: list[list[dict]], value) -> aggregate.Estimate:
  """Mean and interval over seeds of value(a's run) - value(b's run), paired by seed."""
  seeds_a = {r[0]["seed"]: r for r in a if r}
  seeds_b = {r[0]["seed"]: r for r in b if r}
  common = sorted(seeds_a.keys() & seeds_b.keys())
  return aggregate.mean_ci([value(seeds_a[s]) - value(seeds_b[s]) for s in common])


def _seed_diff(a: list[list[dict]], b: list[list[dict]], key: str) -> aggregate.Estimate:
  """Mean and interval over seeds of a's last-generation `key` minus b's (paired by seed)."""
  return _paired(a, b, lambda rows: _last(rows, key))


def _rising(by_value: dict, value, label: str) -> tuple[str, bool]:
  """Whether value(run) rises from each grid value to the next: every paired step's
  interval above 0. Returns the steps' text and the verdict."""
  keys = list(by_value)
  steps = [(lo, hi, _paired(by_value[hi], by_value[lo], value))
           for lo, hi in zip(keys, keys[1:], strict=False)]
  text = "; ".join(f"{label}={hi:g} - {label}={lo:g}: {_ci(e)}" for lo, hi, e in steps)
  return text, all(e.lo > 0 for _, _, e in steps)


def section3(cells) -> list[Claim]:
  """Shi et al. section 3: smaller N collapses faster; r(entropy, log score) is high."""
  claims = []
  by_n = dict(sorted((int(n), runs) for n, runs in _by(cells, "loop.n_train").items()))

  def ratio(rows):
    return _last(rows, "gen_score") / rows[0]["gen_score"] if rows[0].get("gen_score") \
        else math.nan

  if len(by_n) >= 2:
    ratios = {n: aggregate.mean_ci([ratio(r) for r in runs if r]) for n, runs in by_n.items()}
    steps, holds = _rising(by_n, ratio, "N")
    claims.append(Claim(
        "the generalization score falls faster for smaller N (last / first, rising with N)",
        "; ".join(f"N={n}: {_ci(e)}" for n, e in ratios.items()) + f"; paired steps {steps}",
        holds))
  x, y = aggregate.entropy_score_pairs([r for runs in cells.values() for r in runs])
  r = aggregate.pearson_bootstrap(x, y)
  if r.n >= 3:
    claims.append(Claim("r(training-set entropy, log generalization score) >= 0.8 "
                        "(the paper: 0.91)", f"r = {_ci(r)} over {r.n} pairs", r.mean >= 0.8))
  return claims


def _last_step(rows: list[dict]) -> float:
  """The training-set entropy's change over the last generation."""
  return rows[-1]["train_entropy"] - rows[-2]["train_entropy"] if len(rows) >= 2 else math.nan


def reservoir(cells) -> list[Claim]:
  """ERBP: fresh real data (lambda) puts a floor under the entropy that rises with lambda;
  lambda = 0 keeps falling."""
  by_l = {float(v): runs for v, runs in _by(cells, "loop.fresh_fraction").items()}
  if len(by_l) < 2:
    return []
  by_l = dict(sorted(by_l.items()))
  floors = {lam: aggregate.mean_ci([_last(r, "train_entropy") for r in runs])
            for lam, runs in by_l.items()}
  rises, holds = _rising(by_l, lambda rows: _last(rows, "train_entropy"), "lambda")
  claims = [Claim("the last generation's training-set entropy rises with lambda",
                  "; ".join(f"lambda={lam:g}: {_ci(e)}" for lam, e in floors.items())
                  + f"; paired steps {rises}", holds)]
  steps = {lam: aggregate.mean_ci([_last_step(r) for r in runs if len(r) >= 2])
           for lam, runs in by_l.items()}
  if 0.0 in steps and not math.isnan(steps[0.0].hi):
    claims.append(Claim("with lambda = 0 the entropy still falls at the last step",
                        f"last step {_ci(steps[0.0])}", steps[0.0].hi < 0))
  top = max(steps)
  if top > 0 and 0.0 in steps:
    d = _paired(by_l[top], by_l[0.0], _last_step)
    claims.append(Claim(f"with lambda = {top:g} the entropy levels off (its last step is "
                        "above lambda = 0's, paired by seed)",
                        f"{_ci(steps[top])} vs {_ci(steps[0.0])}; difference {_ci(d)}",
                        d.lo > 0))
  return claims


def accumulate(cells) -> list[Claim]:
  """Gerstgrasser et al. 2024: accumulating keeps the score and FD bounded where replacing
  degrades them (last generation, paired by seed)."""
  by_p = _by(cells, "loop.paradigm")
  if "replace" not in by_p or "accumulate" not in by_p:
    return []
  score = _seed_diff(by_p["accumulate"], by_p["replace"], "gen_score")
  fd = _seed_diff(by_p["replace"], by_p["accumulate"], "fd_real")
  return [Claim("accumulate keeps the generalization score above replace's",
                f"accumulate - replace: {_ci(score)}", score.lo > 0),
          Claim("accumulate keeps FD to the real set below replace's",
                f"replace - accumulate: {_ci(fd)}", fd.lo > 0)]


def selection(cells) -> list[Claim]:
  """Shi et al.: greedy and threshold keep the entropy and the generalization score above
  vanilla and above random selection from the same 2N pool (random separates "more
  candidates" from "entropy"); and quality: FD to the real set below vanilla's in every
  space the runs measured (the paper's FID tables), probe confidence not shown lower."""
  by_s = _by(cells, "loop.selection")
  claims = []
  for remedy in ("greedy", "threshold"):
    for key, what in (("train_entropy", "training-set entropy"),
                      ("gen_score", "generalization score")):
      for base in ("none", "random"):
        if remedy in by_s and base in by_s:
          d = _seed_diff(by_s[remedy], by_s[base], key)
          name = "vanilla" if base == "none" else "random selection"
          claims.append(Claim(f"{remedy} keeps the {what} above {name}",
                              f"{remedy} - {name}: {_ci(d)}", d.lo > 0))
    if remedy in by_s and "none" in by_s:  # quality: the paper's FID claim, and the probe
      for key, direction in verdict.QUALITY_METRICS:  # FD in every space the runs measured
        d = _seed_diff(by_s[remedy], by_s["none"], key)
        relation = {"lower": "below vanilla's",
                    "no lower": "no lower than vanilla's (its interval reaches 0 or above)"}
        if d.n >= 2:
          claims.append(Claim(f"quality: {remedy} keeps {key} {relation[direction]}",
                              f"{remedy} - vanilla: {_ci(d)}", aggregate.shown(d, direction)))
  return claims


def wishart(cells) -> list[Claim]:
  """The loop against collapse theory (model.kind=gaussian, replace, no selection): the
  fitted Gaussian's entropy changes by the Wishart law each generation, and its mean takes
  a random walk of variance tr(Sigma)/n per step; each holds when the law lies inside the
  95% interval of the measured mean over all runs and generation steps."""
  runs = [r for rs in cells.values() for r in rs if len(r) >= 2 and "model_entropy" in r[0]]
  if not runs:
    return []
  claims = []
  for n, d in sorted({(r[0]["train_size"], r[0]["pixel_dim"]) for r in runs}):
    mine = [r for r in runs if (r[0]["train_size"], r[0]["pixel_dim"]) == (n, d)]
    steps = aggregate.mean_ci(np.concatenate(
        [np.diff([x["model_entropy"] for x in r]) for r in mine]).tolist())
    law = theory.wishart_entropy_change(n, d)
    claims.append(Claim(f"model_entropy changes by the Wishart law, {law:.4f} nats per "
                        f"generation (n={n}, d={d})",
                        f"{_ci(steps)} over {steps.n} steps of {len(mine)} runs",
                        steps.lo <= law <= steps.hi))
    walk = aggregate.mean_ci(np.concatenate(
        [np.diff([x["model_mean_sq"] for x in r]) * n / np.array(
            [x["model_trace"] for x in r[:-1]]) for r in mine]).tolist())
    claims.append(Claim("the fitted mean walks with step variance tr(Sigma)/n "
                        "(E[d|mu|^2] n / tr(Sigma) = 1)",
                        f"{_ci(walk)} over {walk.n} steps", walk.lo <= 1 <= walk.hi))
  return claims


CHECKERS = {"section3": section3, "reservoir": reservoir, "accumulate": accumulate,
            "selection": selection, "wishart": wishart}


def check(name: str, cells) -> list[Claim]:
  return CHECKERS[name](cells)
