"""The comparison report of several recursive runs (vanilla vs greedy vs threshold ...):
compare.md opens with the verdict measured on those runs, then tables, plots and samples."""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from collapse_jax.loop.report import plot_rows, table  # noqa: E402
from collapse_jax.metrics.writer import read_jsonl  # noqa: E402
from collapse_jax.study import prediction, verdict  # noqa: E402


def load_run(run: str) -> tuple[list[dict], dict]:
  """(per-generation metric rows, config) of a scripts/recursive.py workdir."""
  path = os.path.join(run, "metrics.jsonl")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {run} a scripts/recursive.py workdir?")
  with open(os.path.join(run, "config.json")) as f:
    return read_jsonl(path), json.load(f)


SMOKE_STEPS = 100  # fewer train steps per generation than this: a smoke (test) run
TRAINED = ("unet", "mlp")  # model kinds that learn; the closed forms are reference limits


def is_reference(config: dict) -> bool:
  """A closed-form generator's run (e.g. the memorizer): drawn beside, never judged."""
  return config.get("model", {}).get("kind", "unet") not in TRAINED


def claims(runs: dict[str, tuple[list[dict], dict]]) -> list[verdict.Claim]:
  """Collapse claims on the vanilla run (no selection), remedy and quality claims on every
  run that selects from a pool under the same paradigm and N; none without exactly one
  vanilla.
  Reference runs (closed-form generators) take no part."""
  runs = {n: r for n, r in runs.items() if not is_reference(r[1])}
  vanilla = [n for n, (_, c) in runs.items() if c["loop"]["selection"] == "none"]
  if len(vanilla) != 1:
    return []
  rows, config = runs[vanilla[0]]
  same = lambda c: all(c["loop"][k] == config["loop"][k] for k in ("paradigm", "n_train"))
  remedies = {n: r for n, (r, c) in runs.items()
              if n != vanilla[0] and c["loop"]["selection"] != "none" and same(c)}
  return (verdict.collapse_claims(rows) + verdict.remedy_claims(rows, remedies)
          + verdict.quality_claims(rows, remedies))


def first_last_samples(runs: dict[str, str], out_path: str) -> bool:
  """One picture: each run's samples at generation 1 (left) and its last (right)."""
  panels = []
  for name, run in runs.items():
    gens = sorted(d for d in os.listdir(run) if d.startswith("gen_")
                  and os.path.exists(os.path.join(run, d, "samples.png")))
    if gens:
      panels.append((name, gens[0], gens[-1], run))
  if not panels:
    return False
  fig, axes = plt.subplots(len(panels), 2, figsize=(6, 3 * len(panels)), squeeze=False)
  for row, (name, first, last, run) in zip(axes, panels, strict=True):
    for ax, gen in zip(row, (first, last), strict=True):
      ax.imshow(Image.open(os.path.join(run, gen, "samples.png")), cmap="gray")
      ax.set_title(f"{name}: generation {int(gen[4:])}", fontsize=9)
      ax.axis("off")
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)
  return True


def write_comparison(run_dirs: list[str], out: str) -> str:
  """Writes out/compare.md (verdict first), its plots and samples_first_last.png."""
  runs = {os.path.basename(os.path.abspath(r)): load_run(r) for r in run_dirs}
  os.makedirs(out, exist_ok=True)
  references = {n for n, (_, c) in runs.items() if is_reference(c)}
  plots = plot_rows({n: rows for n, (rows, _) in runs.items()}, out, references)
  lines = ["# Comparison", "", "## Verdict", ""]
  judged = [c for n, (_, c) in runs.items() if n not in references]
  steps = min((c.get("train", {}).get("num_steps", SMOKE_STEPS) for c in judged),
              default=SMOKE_STEPS)
  if steps < SMOKE_STEPS:
    lines += [f"**Smoke-sized run** ({steps} train steps per generation): the claims below are "
              "checked on its numbers, but a model this briefly trained shows nothing about "
              "the paper; run the config without `smoke` for a verdict.", ""]
  lines += [verdict.markdown(claims(runs)), ""]
  vanilla = [rows for n, (rows, c) in runs.items()
             if c["loop"]["selection"] == "none" and n not in references]
  context = verdict.copy_test_context(vanilla[0]) if len(vanilla) == 1 else None
  if context:
    lines += [f"Vanilla: {context}", ""]
  for name in sorted(references):
    kind = runs[name][1]["model"]["kind"]
    lines += [f"`{name}` is a reference, not judged: the same loop with model.kind={kind!r}"
              + (" (the training set's exact optimal denoiser: the memorization limit, whose "
                 "samples are copies)" if kind == "memorizer" else "")
              + "; dashed in the plots.", ""]
  lines += ["### How the verdict decides", "", "One seed's numbers, each claim against a fixed "
            "threshold; the same claims over seeds, with intervals, are in seeds.md "
            "(`scripts/arms.py ... --seeds 0,1,2,3,4`) and the selection sweep "
            "(`scripts/sweep.py --claim selection`).", "",
            verdict.thresholds(), ""]
  if first_last_samples(dict(zip(runs, run_dirs, strict=True)),
                        os.path.join(out, "samples_first_last.png")):
    lines += ["![samples](samples_first_last.png)", ""]
  judged_rows = {n: [rows] for n, (rows, _) in runs.items() if n not in references}
  if any("collapse_t" in r for runs_ in judged_rows.values() for r in runs_[0]):
    lines += ["## Predicting the transition: t_C and the KL entropy", "",
              "Each arm's generations as (training set, its model's samples) pairs: does the "
              "training set's collapse time or its KL entropy track the generalization "
              "score better?", "", *prediction.write(judged_rows, out), ""]
  for name, (rows, _) in runs.items():
    lines += [f"## {name}", "", table(rows), ""]
  lines += [f"![{p}]({p})" for p in plots]
  path = os.path.join(out, "compare.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path
