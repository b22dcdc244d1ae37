"""Runs one recursive run per arm (a config variant) as parallel processes, then compares
them: `make run` is this script on configs/digits.py.

  python scripts/arms.py --config configs/digits.py --arms vanilla,greedy,threshold \
      --workdir runs/digits [--config.seed=1 ...]

Arm `vanilla` is the config without a variant; other arms name one (`greedy` runs
`configs/digits.py:greedy`). Extra `--config.*` flags go to every arm. A killed run resumes.
"""

import argparse
import os
import sys

from collapse_jax.comparison import write_comparison
from collapse_jax.launch import run_parallel

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recursive.py")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="config file, without a variant")
  parser.add_argument("--arms", default="vanilla,greedy,threshold")
  parser.add_argument("--workdir", required=True)
  args, overrides = parser.parse_known_args()
  workdirs = {arm: os.path.join(args.workdir, arm) for arm in args.arms.split(",")}
  jobs = {}
  for arm, workdir in workdirs.items():
    config = args.config if arm == "vanilla" else f"{args.config}:{arm}"
    jobs[arm] = [sys.executable, SCRIPT, "--config", config, "--workdir", workdir, *overrides]
  try:
    run_parallel(jobs, os.path.join(args.workdir, "logs"))
  except RuntimeError as e:
    raise SystemExit(f"arms failed: {e}") from None
  print(f"wrote {write_comparison(list(workdirs.values()), args.workdir)}")


if __name__ == "__main__":
  main()
