"""Overlays the per-generation metrics of several runs (e.g. vanilla vs greedy vs threshold).

  python scripts/compare.py runs/digits_vanilla runs/digits_greedy --out runs/compare
"""

import argparse
import os

from collapse_jax.metrics.writer import read_jsonl
from collapse_jax.report import plot_rows, table


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+")
  parser.add_argument("--out", default=None, help="output dir (default: the runs' parent)")
  args = parser.parse_args()
  rows = {}
  for run in args.runs:
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
      raise SystemExit(f"{path} not found: is {run} a scripts/recursive.py workdir?")
    rows[os.path.basename(os.path.abspath(run))] = read_jsonl(path)
  out = args.out or os.path.dirname(os.path.abspath(args.runs[0]))
  os.makedirs(out, exist_ok=True)
  plots = plot_rows(rows, out)
  lines = ["# Comparison", ""]
  for name, r in rows.items():
    lines += [f"## {name}", "", table(r), ""]
  lines += [f"![{p}]({p})" for p in plots]
  with open(os.path.join(out, "compare.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {', '.join(plots)} and compare.md to {out}")


if __name__ == "__main__":
  main()
