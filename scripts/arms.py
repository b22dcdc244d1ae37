"""Runs one recursive run per arm (a config variant) as parallel processes, then compares
them: `make run` is this script on configs/digits.py.

  python scripts/arms.py --config configs/digits.py --arms vanilla,greedy,threshold \
      --workdir runs/digits [--config.seed=1 ...]

Arm `vanilla` is the config as given; other arms add their name to its variants (`greedy`
runs `configs/digits.py:greedy`, and with `--config configs/digits.py:smoke` it runs
`configs/digits.py:smoke,greedy`); `+` joins variants in one arm (`greedy+learned` selects
greedily in the learned feature space). Extra `--config.*` flags go to every arm.
Re-running the same command resumes killed runs and skips finished ones.

`--seeds 0,1,2,3,4` repeats the comparison at each seed (workdir/seed=K/, one seed after
another), then writes workdir/seeds.md: each arm against vanilla with intervals over the
seeds, paired by seed (collapse_jax/study/seeds.py).

Generation 1 trains on the real set, identically in every arm: the first arm trains it
alone (on all the cores), the others start once it is saved and adopt it
(`config.loop.first_model_from`), then all run side by side.

On a GPU node or TPU VM each arm gets its own devices (collapse_jax/study/devices.py):
`--devices auto` finds them (CUDA_VISIBLE_DEVICES or nvidia-smi, /dev/accel*, XLA_FLAGS'
fake CPU devices); when they do not split (one GPU, a mesh needing every chip) the arms run
one after another. On a plain CPU host all arms share the cores.

`--limit` adds the arm `memorizer`: the same loop with the training set's exact optimal
denoiser in place of the trained model (`model.kind=memorizer`, seconds): the memorization
limit, drawn beside the trained arms in compare.md.
"""

import argparse
import json
import os
import sys

from collapse_jax.generators.diffusion import first_model_checkpoint
from collapse_jax.preemption import REQUEUE_EXIT
from collapse_jax.study import seeds as seeds_report
from collapse_jax.study.comparison import write_comparison
from collapse_jax.study.launch import Place, Stopped, places_for, run_jobs

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recursive.py")


def first_model_ready(run: str) -> bool:
  """The run's generation-1 model has its final checkpoint."""
  try:
    with open(os.path.join(run, "config.json")) as f:
      steps = json.load(f)["train"]["num_steps"]
  except (OSError, ValueError, KeyError):
    return False
  return os.path.isdir(first_model_checkpoint(run, steps))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="config file[:variants]")
  parser.add_argument("--arms", default="vanilla,greedy,threshold")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--limit", action="store_true",
                      help="add the memorizer arm (the memorization limit) to the comparison")
  parser.add_argument("--devices", default="auto",
                      help="auto, cpu (share the cores), or gpu:N / tpu:N / cpu:N to split")
  parser.add_argument("--seeds", default="",
                      help="comma-separated seeds: the comparison at each, then seeds.md")
  args, overrides = parser.parse_known_args()
  arms = args.arms.split(",") + (["memorizer"] if args.limit else [])
  if not args.seeds:
    return compare_arms(args, arms, args.workdir, overrides)
  try:
    seeds = [int(s) for s in args.seeds.split(",")]
  except ValueError:
    raise SystemExit(f"error: --seeds={args.seeds}: give integers, e.g. --seeds 0,1,2") \
        from None
  for i, seed in enumerate(seeds):
    print(f"seed {seed} ({i + 1} of {len(seeds)})", flush=True)
    compare_arms(args, arms, os.path.join(args.workdir, f"seed={seed}"),
                 [*overrides, f"--config.seed={seed}"])
  print(f"wrote {seeds_report.write(args.workdir)}")


def compare_arms(args, arms: list[str], root: str, overrides: list[str]) -> None:
  """Runs the arms side by side in root/<arm>/, then root/compare.md."""
  workdirs = {arm: os.path.join(root, arm) for arm in arms}
  first = next(iter(workdirs.values()))
  jobs = {}
  for arm, workdir in workdirs.items():
    config = args.config
    if arm not in ("vanilla", "memorizer"):
      variants = arm.replace("+", ",")
      config += f",{variants}" if ":" in config else f":{variants}"
    jobs[arm] = [sys.executable, SCRIPT, "--config", config, "--workdir", workdir, *overrides]
    if arm == "memorizer":
      jobs[arm].append("--config.model.kind=memorizer")
    elif workdir != first:  # the first arm's generation-1 model is the same for every arm
      jobs[arm].append(f"--config.loop.first_model_from={os.path.abspath(first)}")
  wait = {arm: lambda: first_model_ready(first) for arm in list(workdirs)[1:]
          if arm != "memorizer"}
  try:
    places = places_for(args.devices, args.config, overrides, len(jobs),
                        [Place()] * len(jobs))
    run_jobs(jobs, places, os.path.join(root, "logs"), wait_for=wait)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  except Stopped as e:
    print(e, file=sys.stderr, flush=True)
    raise SystemExit(REQUEUE_EXIT) from None
  except RuntimeError as e:
    raise SystemExit(f"arms failed: {e}") from None
  print(f"wrote {write_comparison(list(workdirs.values()), root)}")


if __name__ == "__main__":
  main()
