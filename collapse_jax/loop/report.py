"""Pictures and the summary page of a recursive run: grids, nearest-neighbour panels, plots."""

import json
import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from collapse_jax.images import from_uint8, save_grid  # noqa: E402
from collapse_jax.kernels.knn import knn  # noqa: E402
from collapse_jax.sharding import to_host  # noqa: E402

PLOTS = {  # a plot is drawn when its metrics were measured (encoder weights given)
    "entropy": ("train_entropy", "pool_entropy", "selected_entropy"),
    "collapse_t": ("collapse_t",),
    "model_entropy": ("model_entropy",),
    "gen_score": ("gen_score", "heldout_score"),
    "memorization": ("memorized_frac", "unique_copied", "copy_frac"),
    "fd_real": ("fd_real", "fd_real_heldout", "fd_real_subset", "fd_real_subset_heldout"),
    "sinkhorn": ("sinkhorn", "sinkhorn_heldout"),
    "probe_conf": ("probe_conf", "real_probe_conf"),
    "learned_entropy": ("learned_train_entropy", "learned_pool_entropy",
                        "learned_selected_entropy"),
    "learned_gen_score": ("learned_gen_score", "learned_heldout_score"),
    "learned_memorization": ("learned_memorized_frac", "learned_unique_copied",
                             "learned_copy_frac"),
    "fd_learned": ("fd_learned", "fd_learned_heldout"),
    "dino_entropy": ("dino_train_entropy", "dino_pool_entropy", "dino_selected_entropy"),
    "dino_collapse_t": ("dino_collapse_t",),
    "dino_gen_score": ("dino_gen_score", "dino_heldout_score"),
    "dino_memorization": ("dino_memorized_frac", "dino_unique_copied", "dino_copy_frac"),
    "fd_dino": ("fd_dino", "fd_dino_heldout"),
    "dino_sinkhorn": ("dino_sinkhorn", "dino_sinkhorn_heldout"),
    "fid": ("fid", "fid_subset"),
    "precision_recall": ("precision", "recall"),
}


def _scale(images) -> int:
  return max(1, 64 // images.shape[1])


SCATTER_POINTS = 4000  # per set in a vector run's scatter plot


def generation_pictures(train, pool, selected, n_panel: int) -> dict[str, np.ndarray]:
  """Host arrays for a generation's pictures. Images: 64 samples, and n_panel samples over
  their nearest training images. Vectors: (up to SCATTER_POINTS) rows of the training set,
  the pool and the selected set.

  The search runs where the sets live (on the devices, for the loop's sets); only the
  pictured rows reach the host. Every process must call it; one writes the files.
  """
  if pool.images.ndim == 2:
    return {name: to_host(s.images[:SCATTER_POINTS])
            for name, s in (("training set", train), ("pool", pool), ("selected", selected))}
  flat = lambda x: x.reshape(x.shape[0], -1).astype(np.float32)
  k = min(n_panel, len(pool))
  _, idx = knn(flat(pool.images[:k]), flat(train.images), 1)
  nearest = to_host(train.take(to_host(idx[:, 0])).images)
  head = to_host(pool.images[:max(64, k)])  # one fetch for both pictures
  return {"samples": head[:64], "nearest": np.concatenate([head[:k], nearest])}


def write_generation(gen_dir: str, pictures: dict[str, np.ndarray]) -> None:
  """gen_dir/samples.png and nearest.png (samples over their nearest training image), or
  for vector data gen_dir/scatter.png (the first two coordinates of each set)."""
  os.makedirs(gen_dir, exist_ok=True)
  if "samples" not in pictures:
    write_scatter(os.path.join(gen_dir, "scatter.png"), pictures)
    return
  samples, pair = pictures["samples"], pictures["nearest"]
  save_grid(from_uint8(samples), os.path.join(gen_dir, "samples.png"), scale=_scale(samples))
  save_grid(from_uint8(pair), os.path.join(gen_dir, "nearest.png"), ncol=len(pair) // 2,
            scale=_scale(samples))


def write_scatter(path: str, sets: dict[str, np.ndarray]) -> None:
  """The sets' points over the first two coordinates (the whole space when d = 2)."""
  fig, ax = plt.subplots(figsize=(4.5, 4.5))
  styles = {"training set": dict(s=14, c="0.55"), "pool": dict(s=5, c="tab:blue", alpha=0.5),
            "selected": dict(s=16, facecolors="none", edgecolors="tab:red", linewidths=0.8)}
  for name, rows in sets.items():
    y = rows[:, 1] if rows.shape[1] > 1 else np.zeros(len(rows))
    ax.scatter(rows[:, 0], y, label=f"{name} ({len(rows)})", **styles.get(name, {}))
  dims = sets["pool"].shape[1]
  ax.set_title("coordinates 1-2" + (f" of {dims}" if dims > 2 else ""), fontsize=9)
  ax.set_aspect("equal", adjustable="datalim")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_rows(rows_by_run: dict[str, list[dict]], out_dir: str,
              references=frozenset()) -> list[str]:
  """One PNG per measure with a line per (run, metric); returns the file names. Runs named
  in `references` (limits such as the memorizer) are dashed, and the axis keeps the other
  runs' range readable: a reference far outside it runs off the plot."""
  names = []
  for plot, keys in PLOTS.items():
    if not any(key in r for rows in rows_by_run.values() for r in rows for key in keys):
      continue
    fig, ax = plt.subplots(figsize=(5, 3.5))
    main = [run for run in rows_by_run if run not in references]
    for i, run in enumerate(main + [r for r in rows_by_run if r in references]):
      rows = rows_by_run[run]
      if i == len(main) and main:
        lo, hi = ax.get_ylim()
      gens = [r["generation"] for r in rows]
      for key in (k for k in keys if rows and k in rows[0]):
        label = key if len(rows_by_run) == 1 else f"{run}: {key}"
        ax.plot(gens, [r[key] for r in rows], marker="o", label=label,
                linestyle="--" if run in references else "-")
    if main and len(main) < len(rows_by_run):
      span = hi - lo
      ref_lo, ref_hi = ax.get_ylim()
      ax.set_ylim(max(ref_lo, lo - span), min(ref_hi, hi + span))
    names.append(save_by_generation(fig, ax, plot, out_dir, f"{plot}.png"))
  return names


def save_by_generation(fig, ax, ylabel: str, out_dir: str, name: str) -> str:
  """Labels a plot over generations (integer ticks, legend), saves out_dir/name, closes it."""
  ax.set_xlabel("generation")
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, name), dpi=110)
  plt.close(fig)
  return name


def plot_sources(rows: list[dict], out_dir: str) -> str:
  """Stacked bars: the share of each source (real, gen1, ...) in every training set."""
  keys = sorted({k for r in rows for k in r if k.startswith("frac_")},
                key=lambda k: (k != "frac_real", len(k), k))
  fig, ax = plt.subplots(figsize=(5, 3.5))
  gens = [r["generation"] for r in rows]
  bottom = np.zeros(len(rows))
  for key in keys:
    share = np.array([r.get(key, 0.0) for r in rows])
    ax.bar(gens, share, bottom=bottom, label=key[5:])
    bottom += share
  ax.set_xlabel("generation (model trained on this set)")
  ax.set_ylabel("share of training set")
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, "sources.png"), dpi=110)
  plt.close(fig)
  return "sources.png"


TABLE_KEYS = ("generation", "model_entropy", "train_entropy", "pool_entropy", "selected_entropy",
              "collapse_t", "collapse_step", "gen_score", "heldout_score", "memorized_frac",
              "unique_copied", "copy_frac", "fd_real", "fd_real_heldout", "fd_real_subset",
              "fd_real_subset_heldout", "sinkhorn", "sinkhorn_heldout", "probe_conf",
              "real_probe_conf", "pixel_variance", "learned_train_entropy",
              "learned_collapse_t", "learned_gen_score", "learned_heldout_score",
              "learned_copy_frac", "fd_learned", "fd_learned_heldout", "dino_train_entropy",
              "dino_pool_entropy",
              "dino_selected_entropy", "dino_collapse_t", "dino_collapse_step",
              "dino_gen_score", "dino_heldout_score", "dino_memorized_frac",
              "dino_unique_copied", "dino_copy_frac", "fd_dino", "fd_dino_heldout",
              "dino_sinkhorn", "dino_sinkhorn_heldout", "fid", "fid_subset",
              "precision", "recall")


def table(rows: list[dict], keys=TABLE_KEYS) -> str:
  """A markdown table of the per-generation metrics that were measured."""
  keys = [k for k in keys if rows and k in rows[0]]
  fmt = lambda v: (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}") if isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
  lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
  return "\n".join(lines)


def write_report(workdir: str, config, rows: list[dict]) -> None:
  """Plots across generations and workdir/report.md with the table, pictures and config."""
  plots = []
  if config.loop.pictures:
    plots = plot_rows({os.path.basename(os.path.abspath(workdir)): rows}, workdir)
    plots.append(plot_sources(rows, workdir))
  lc = config.loop
  parts = [
      f"# Recursive run: {lc.paradigm}, selection {lc.selection}, "
      f"{len(rows)} generations, N = {rows[0]['train_size'] if rows else '?'}",
      "", table(rows), "",
      *[f"![{p}]({p})" for p in plots], "",
      "## Samples (top) and nearest training images (bottom)", "",
  ]
  vector = os.path.exists(os.path.join(workdir, "gen_01", "scatter.png"))
  if vector:
    parts[-2] = "## Training set, pool and selected points"
  for r in rows if config.loop.pictures else ():
    g = f"gen_{r['generation']:02d}"
    pictures = (f"![scatter]({g}/scatter.png)" if vector
                else f"![samples]({g}/samples.png) ![nearest]({g}/nearest.png)")
    parts += [f"### generation {r['generation']}", "", pictures, ""]
  parts += ["## Config", "", "```json", json.dumps(json.loads(config.to_json()), indent=2),
            "```", ""]
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write("\n".join(parts))
