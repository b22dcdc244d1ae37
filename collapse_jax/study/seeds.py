"""An arms comparison repeated over seeds (`scripts/arms.py --seeds K`): each remedy arm
against vanilla at the last generation, differences paired by seed with 95% intervals, for
diversity (entropy, generalization score, copies) and quality (FD, probe confidence) in
every space the runs measured; seeds.md with the table of each arm's last generation and
every generation's mean and band per arm (seeds.png).
"""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from collapse_jax.study import aggregate  # noqa: E402
from collapse_jax.study.comparison import is_reference, load_run  # noqa: E402
from collapse_jax.study.sweep_report import draw_band  # noqa: E402
from collapse_jax.study.verdict import Claim, markdown  # noqa: E402

# (metric, the direction a remedy should move it, what it measures)
METRICS = (
    ("train_entropy", "higher", "diversity"), ("gen_score", "higher", "diversity"),
    ("copy_frac", "lower", "diversity"), ("learned_train_entropy", "higher", "diversity"),
    ("learned_gen_score", "higher", "diversity"), ("fd_real", "lower", "quality"),
    ("fd_learned", "lower", "quality"), ("fd_dino", "lower", "quality"),
    ("fid", "lower", "quality"), ("probe_conf", "no lower", "quality"))
TABLE = ("train_entropy", "gen_score", "copy_frac", "learned_train_entropy",
         "learned_gen_score", "fd_real", "fd_learned", "probe_conf")
PANELS = ("train_entropy", "gen_score", "learned_train_entropy", "fd_real", "fd_learned",
          "probe_conf")


def read(root: str) -> dict[str, dict[int, list[dict]]]:
  """arm -> seed -> metric rows, from root/seed=K/<arm>/ workdirs (reference arms left
  out)."""
  out: dict[str, dict[int, list[dict]]] = {}
  for entry in sorted(os.listdir(root)):
    if not entry.startswith("seed="):
      continue
    seed = int(entry[5:])
    for arm in sorted(os.listdir(os.path.join(root, entry))):
      run = os.path.join(root, entry, arm)
      if os.path.exists(os.path.join(run, "metrics.jsonl")):
        rows, config = load_run(run)
        if rows and not is_reference(config):
          out.setdefault(arm, {})[seed] = rows
  return dict(sorted(out.items(), key=lambda kv: kv[0] != "vanilla"))  # vanilla first


def _last(rows: list[dict], key: str, g: int) -> float:
  v = rows[g - 1].get(key) if len(rows) >= g else None
  return float(v) if v is not None else math.nan


def _ci(e: aggregate.Estimate) -> str:
  return f"{e.mean:.4g} [{e.lo:.4g}, {e.hi:.4g}]"


def claims(arms: dict[str, dict[int, list[dict]]], vanilla: str = "vanilla") -> list[Claim]:
  """Each arm against vanilla at the last generation every run reached: 'higher' holds when
  the 95% interval of (arm - vanilla), paired by seed, lies above 0; 'lower' when it lies
  below; 'no lower' when its upper end reaches 0 (the arm is not shown worse)."""
  if vanilla not in arms:
    return []
  out = []
  for arm, by_seed in arms.items():
    if arm == vanilla:
      continue
    seeds = sorted(by_seed.keys() & arms[vanilla].keys())
    if len(seeds) < 2:
      continue
    g = min(len(r) for r in [*(by_seed[s] for s in seeds), *(arms[vanilla][s] for s in seeds)])
    for key, direction, what in METRICS:
      diffs = [_last(by_seed[s], key, g) - _last(arms[vanilla][s], key, g) for s in seeds]
      if any(math.isnan(d) for d in diffs):
        continue
      e = aggregate.mean_ci(diffs)
      out.append(Claim(f"{what}: {arm} keeps {key} {direction} than vanilla's at generation "
                       f"{g}", f"{arm} - vanilla: {_ci(e)} over {len(seeds)} seeds",
                       aggregate.shown(e, direction)))
  return out


def table(arms: dict[str, dict[int, list[dict]]], keys=TABLE) -> str:
  """Each arm's last generation: mean [95% interval] over seeds, per metric measured."""
  g = min(len(r) for by_seed in arms.values() for r in by_seed.values())
  keys = [k for k in keys if all(not math.isnan(_last(r, k, g))
                                 for by_seed in arms.values() for r in by_seed.values())]
  lines = [f"| arm (generation {g}) | seeds | " + " | ".join(keys) + " |",
           "|---|---|" + "---|" * len(keys)]
  for arm, by_seed in arms.items():
    cells = [aggregate.mean_ci([_last(r, k, g) for r in by_seed.values()]) for k in keys]
    lines.append(f"| {arm} | {len(by_seed)} | " + " | ".join(_ci(e) for e in cells) + " |")
  return "\n".join(lines)


def plot(arms: dict[str, dict[int, list[dict]]], out_dir: str, keys=PANELS) -> str | None:
  """out_dir/seeds.png: one panel per metric, each arm's mean over seeds per generation
  with its 95% band; None when no arm measured any of `keys`."""
  keys = [k for k in keys if any(aggregate.by_generation(list(s.values()), k)
                                 for s in arms.values())]
  if not keys:
    return None
  cols = min(3, len(keys))
  rows = -(-len(keys) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
  for ax, key in zip(axes.flat, keys, strict=False):
    for arm, by_seed in arms.items():
      draw_band(ax, list(by_seed.values()), key, arm, ms=3)
    ax.set_title(key, fontsize=9)
    ax.set_xlabel("generation", fontsize=8)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(keys):]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, "seeds.png"), dpi=100)
  plt.close(fig)
  return "seeds.png"


def write(root: str) -> str:
  """root/seeds.md: the claims over seeds, then the last-generation table and each seed's
  own compare.md verdict count."""
  arms = read(root)
  lines = ["# Arms over seeds", "",
           "Each arm against vanilla at the last generation, differences paired by seed "
           "(same real data and generation-1 model), 95% Student-t intervals. "
           "Per-seed verdicts and pictures: `seed=K/compare.md`.", "",
           markdown(claims(arms)), ""]
  if arms:
    lines += ["## Last generation, mean [95% interval] over seeds", "", table(arms), ""]
    picture = plot(arms, root)
    if picture:
      lines += ["## Every generation, mean and 95% band over seeds", "",
                f"![each arm per generation over seeds]({picture})", ""]
  for entry in sorted(os.listdir(root)):
    path = os.path.join(root, entry, "compare.md")
    if entry.startswith("seed=") and os.path.exists(path):
      with open(path) as f:
        head = next((line for line in f if "claims hold" in line), "")
      lines.append(f"- [{entry}]({entry}/compare.md): {head.strip()}")
  path = os.path.join(root, "seeds.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path
