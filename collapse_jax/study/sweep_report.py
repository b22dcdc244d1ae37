"""sweep.md: per grid cell and generation, mean and 95% interval over seeds; curves with
bands; training-set entropy against log generalization score over every run (Pearson r
with a bootstrap interval), coloured by N as in the paper's section-3 figure."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from collapse_jax.loop.report import save_by_generation  # noqa: E402
from collapse_jax.study import aggregate, claims, prediction, sweep, verdict  # noqa: E402

METRICS = ("train_entropy", "collapse_t", "gen_score", "memorized_frac", "unique_copied", "fd_real",
           "dino_train_entropy", "dino_gen_score", "fd_dino", "fid")


def cell_label(cell) -> str:
  return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in cell) or "base"


def _fmt(e: aggregate.Estimate) -> str:
  if e.n == 0:
    return ""
  if e.n < 2:
    return f"{e.mean:.4g} (n=1)"
  return f"{e.mean:.4g} [{e.lo:.4g}, {e.hi:.4g}] (n={e.n})"


def draw_band(ax, runs: list[list[dict]], metric: str, label: str, **style) -> bool:
  """The runs' mean of `metric` per generation and its 95% band (none where a generation
  has one run) on ax; False when no run measured it."""
  est = aggregate.by_generation(runs, metric)
  if not est:
    return False
  gens = list(est)
  ax.plot(gens, [est[g].mean for g in gens], marker="o", label=label, **style)
  ax.fill_between(gens, [est[g].lo for g in gens], [est[g].hi for g in gens], alpha=0.2)
  return True


def plot_bands(cells, metric: str, out_dir: str) -> str | None:
  """Mean curve and its 95% band per cell; None when no run measured `metric`."""
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  drawn = False
  for cell, runs in cells.items():
    drawn |= draw_band(ax, runs, metric, cell_label(cell))
  if not drawn:
    plt.close(fig)
    return None
  return save_by_generation(fig, ax, metric, out_dir, f"sweep_{metric}.png")


def correlation(cells, out_dir: str) -> tuple[aggregate.Estimate, str | None]:
  """r(train entropy, log gen score) over every run and generation, and its scatter."""
  all_runs = [rows for runs in cells.values() for rows in runs]
  x, y = aggregate.entropy_score_pairs(all_runs)
  r = aggregate.pearson_bootstrap(x, y)
  if x.size == 0:
    return r, None
  fig, ax = plt.subplots(figsize=(5, 3.8))
  for cell, runs in cells.items():
    cx, cy = aggregate.entropy_score_pairs(runs)
    ax.scatter(cx, cy, s=14, label=cell_label(cell))
  ax.set_xlabel("training-set entropy")
  ax.set_ylabel("log generalization score")
  ax.set_title(f"r = {r.mean:.3f} [{r.lo:.3f}, {r.hi:.3f}]", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, "sweep_entropy_vs_score.png"), dpi=110)
  plt.close(fig)
  return r, "sweep_entropy_vs_score.png"


def write(sweep_dir: str) -> str:
  """Writes sweep_dir/sweep.md and its plots from the runs found so far."""
  cells = sweep.read_runs(sweep_dir)
  total = sum(len(runs) for runs in cells.values())
  lines = ["# Sweep", "", f"{total} runs with metrics in {len(cells)} cells; means over "
           "seeds with 95% Student-t intervals.", ""]
  claim = sweep.read_spec(sweep_dir).get("claim")
  if claim:
    lines += [f"## Claim: {claim}", "", verdict.markdown(claims.check(claim, cells)), ""]
  r, scatter = correlation(cells, sweep_dir)
  lines += ["## Entropy and generalization", "",
            f"Pearson r(train entropy, log gen score) over {r.n} (run, generation) pairs: "
            f"**{r.mean:.3f}**, bootstrap 95% interval [{r.lo:.3f}, {r.hi:.3f}] "
            "(the paper: 0.91).", ""]
  if scatter:
    lines += [f"![scatter]({scatter})", ""]
  lines += ["## Predicting the transition: t_C and the KL entropy", "",
            *prediction.write({cell_label(c): runs for c, runs in cells.items()}, sweep_dir,
                              "sweep_prediction.png"), ""]
  for metric in METRICS:
    plot = plot_bands(cells, metric, sweep_dir)
    if plot is None:
      continue
    lines += [f"## {metric}", "", f"![{metric}]({plot})", "",
              "| cell | " + " | ".join(f"gen {g}" for g in _generations(cells)) + " |",
              "|---|" + "---|" * len(_generations(cells))]
    for cell, runs in cells.items():
      est = aggregate.by_generation(runs, metric)
      lines.append(f"| {cell_label(cell)} | "
                   + " | ".join(_fmt(est[g]) if g in est else "" for g in _generations(cells))
                   + " |")
    lines.append("")
  path = os.path.join(sweep_dir, "sweep.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path


def _generations(cells) -> list[int]:
  return sorted({int(r["generation"]) for runs in cells.values() for rows in runs
                 for r in rows})
