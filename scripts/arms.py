"""Runs one recursive run per arm (a config variant) as parallel processes, then compares
them: `make run` is this script on configs/digits.py.

  python scripts/arms.py --config configs/digits.py --arms vanilla,greedy,threshold \
      --workdir runs/digits [--config.seed=1 ...]

Arm `vanilla` is the config as given; other arms add their name to its variants (`greedy`
runs `configs/digits.py:greedy`, and with `--config configs/digits.py:smoke` it runs
`configs/digits.py:smoke,greedy`). Extra `--config.*` flags go to every arm. Re-running the
same command resumes killed runs and skips finished ones.
"""

import argparse
import os
import sys

from collapse_jax.comparison import write_comparison
from collapse_jax.launch import run_parallel

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recursive.py")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="config file[:variants]")
  parser.add_argument("--arms", default="vanilla,greedy,threshold")
  parser.add_argument("--workdir", required=True)
  args, overrides = parser.parse_known_args()
  workdirs = {arm: os.path.join(args.workdir, arm) for arm in args.arms.split(",")}
  jobs = {}
  for arm, workdir in workdirs.items():
    config = args.config
    if arm != "vanilla":
      config += f",{arm}" if ":" in config else f":{arm}"
    jobs[arm] = [sys.executable, SCRIPT, "--config", config, "--workdir", workdir, *overrides]
  try:
    run_parallel(jobs, os.path.join(args.workdir, "logs"))
  except RuntimeError as e:
    raise SystemExit(f"arms failed: {e}") from None
  print(f"wrote {write_comparison(list(workdirs.values()), args.workdir)}")


if __name__ == "__main__":
  main()
