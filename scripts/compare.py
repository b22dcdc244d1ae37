"""Overlays the per-generation metrics of several runs (e.g. vanilla vs greedy vs threshold)
and opens the report with the verdict on the paper's claims, measured on those runs.

  python scripts/compare.py runs/digits/vanilla runs/digits/greedy --out runs/digits
"""

import argparse
import os

from collapse_jax.study.comparison import write_comparison


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+")
  parser.add_argument("--out", default=None, help="output dir (default: the runs' parent)")
  args = parser.parse_args()
  out = args.out or os.path.dirname(os.path.abspath(args.runs[0]))
  try:
    print(f"wrote {write_comparison(args.runs, out)}")
  except FileNotFoundError as e:
    raise SystemExit(str(e)) from None


if __name__ == "__main__":
  main()
