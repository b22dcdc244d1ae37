"""Does a training set's collapse time predict how its model generalizes, better than its
KL entropy? Over every (run, generation): Pearson r of each predictor with the log of the
generalization score relative to held-out real data's, with bootstrap intervals, a
scatter per predictor, and one sentence stating what the numbers say, whichever way."""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from collapse_jax.study import aggregate  # noqa: E402

PREDICTORS = (("train_entropy", "training-set KL entropy"),
              ("collapse_t", "collapse time t_C"))
TARGET = "log(gen score / held-out score)"


def pairs(runs: list[list[dict]], predictor: str) -> tuple[np.ndarray, np.ndarray, int]:
  """(predictor, log(gen_score / heldout_score)) over every run and generation with both
  finite, and how many rows were left out (a t_C off the schedule is inf)."""
  xs, ys, dropped = [], [], 0
  for rows in runs:
    for r in rows:
      x, s, h = (r.get(k, math.nan) for k in (predictor, "gen_score", "heldout_score"))
      ok = all(v is not None and math.isfinite(v) for v in (x, s, h)) and s > 0 and h > 0
      if ok:
        xs.append(x)
        ys.append(math.log(s / h))
      else:
        dropped += 1
  return np.asarray(xs, np.float64), np.asarray(ys, np.float64), dropped


def _abs_interval(e: aggregate.Estimate) -> tuple[float, float]:
  """The interval of |r| from r's: [0, max] when r's interval holds zero."""
  if e.lo * e.hi <= 0:
    return 0.0, max(abs(e.lo), abs(e.hi))
  return tuple(sorted((abs(e.lo), abs(e.hi))))


def _signs(est: dict[str, aggregate.Estimate]) -> str:
  """What the signs say: r > 0 means sets with the larger value had models that
  generalized more."""
  words = []
  for key, label in (("collapse_t", "t_C"), ("train_entropy", "KL entropy")):
    r = est[key].mean
    if math.isfinite(r):
      words.append(f"a larger {label} went with {'more' if r > 0 else 'less'} generalization")
  return ("Signs: " + "; ".join(words) + ".") if words else ""


def _verdict(est: dict[str, aggregate.Estimate]) -> str:
  """A larger |r| predicts better; the intervals of |r| say whether the data can tell."""
  e, t = est["train_entropy"], est["collapse_t"]
  if not all(math.isfinite(v) for v in (e.lo, e.hi, t.lo, t.hi)):
    return "Too few (run, generation) pairs to compare the predictors."
  (lo_e, hi_e), (lo_t, hi_t) = _abs_interval(e), _abs_interval(t)
  ae, at = abs(e.mean), abs(t.mean)
  if lo_t > hi_e:
    return (f"t_C predicts the generalization score better than the KL entropy (|r| "
            f"{at:.2f} vs {ae:.2f}; the intervals do not overlap).")
  if lo_e > hi_t:
    return (f"The KL entropy predicts the generalization score better than t_C (|r| "
            f"{ae:.2f} vs {at:.2f}; the intervals do not overlap).")
  ahead = "t_C" if at > ae else "the KL entropy"
  return (f"Neither predictor is shown better: |r| {at:.2f} (t_C) vs {ae:.2f} (entropy), "
          f"{ahead} ahead, with overlapping intervals.")


def write(runs_by_name: dict[str, list[list[dict]]], out_dir: str,
          name: str = "prediction.png") -> list[str]:
  """Markdown lines (a table and the finding) and `out_dir/name`, a scatter per predictor
  coloured by `runs_by_name` (a cell of a sweep, an arm)."""
  every = [rows for runs in runs_by_name.values() for rows in runs]
  est, lines = {}, ["| predictor | Pearson r with " + TARGET + " | 95% bootstrap interval "
                    "| pairs | left out |", "|---|---|---|---|---|"]
  fig, axes = plt.subplots(1, len(PREDICTORS), figsize=(9, 3.6))
  for ax, (key, label) in zip(axes, PREDICTORS, strict=True):
    x, y, dropped = pairs(every, key)
    est[key] = r = aggregate.pearson_bootstrap(x, y)
    lines.append(f"| {label} (`{key}`) | {r.mean:.3f} | [{r.lo:.3f}, {r.hi:.3f}] | {r.n} "
                 f"| {dropped} |")
    for group, runs in runs_by_name.items():
      gx, gy, _ = pairs(runs, key)
      ax.scatter(gx, gy, s=14, label=group)
    ax.set_xlabel(label)
    ax.set_ylabel(TARGET)
    ax.set_title(f"r = {r.mean:.3f} [{r.lo:.3f}, {r.hi:.3f}]", fontsize=9)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, name), dpi=110)
  plt.close(fig)
  return lines + ["", f"{_verdict(est)} {_signs(est)}".strip(), "", f"![prediction]({name})"]
