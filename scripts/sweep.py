"""A grid of config values x seeds as ordinary recursive runs, then their statistics.

  python scripts/sweep.py --config configs/digits.py --workdir runs/sweep_n \
      --grid 'loop.n_train=32,64,128' --grid 'loop.selection=none,greedy' --seeds 3 \
      [--jobs 2] [--config.loop.generations=4 ...]
  python scripts/sweep.py ... --list        # one command line per run, for a scheduler
  python scripts/sweep.py --aggregate --workdir runs/sweep_n   # sweep.md from what finished
  python scripts/sweep.py --claim section3 --workdir runs/claim_section3 --jobs 2

`--claim NAME` takes config, grid and seeds from configs/claims.py and adds that claim's
verdict (collapse_jax/study/claims.py) to sweep.md.

Re-running skips finished runs and resumes killed ones. On a CPU host `--jobs K` runs K
at once, each pinned to its share of the cores; on a GPU node or TPU VM the runs at once
follow from the devices and the config's mesh, each on its own (`--devices`).
"""

import argparse
import os
import shlex

from collapse_jax.study import sweep, sweep_report
from collapse_jax.study.launch import core_shares, places_for, run_jobs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "recursive.py")


def claim_specs() -> dict:
  return sweep.load_module(os.path.join(REPO, "configs", "claims.py")).CLAIMS


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", help="config file[:variants]")
  parser.add_argument("--workdir", required=True, help="the sweep directory")
  parser.add_argument("--grid", action="append", default=[], help="field=v1,v2,...")
  parser.add_argument("--seeds", type=int, default=None,
                      help="seeds 0..K-1 per grid cell (default 3, or the claim's)")
  parser.add_argument("--jobs", type=int, default=1,
                      help="runs at once on a CPU host (each on its share of the cores)")
  parser.add_argument("--devices", default="auto",
                      help="auto, cpu, or gpu:N / tpu:N / cpu:N: runs at once on their own "
                      "devices (collapse_jax/study/devices.py)")
  parser.add_argument("--list", action="store_true", help="print the runs' command lines")
  parser.add_argument("--aggregate", action="store_true", help="only write sweep.md")
  parser.add_argument("--claim", default="", help="a claim of configs/claims.py")
  args, extra = parser.parse_known_args()
  if args.claim:
    specs = claim_specs()
    if args.claim not in specs:
      parser.error(f"--claim {args.claim!r}: choose one of {sorted(specs)}")
    c = specs[args.claim]
    args.config = args.config or os.path.join(REPO, c["config"])
    args.grid, args.seeds = args.grid or c["grid"], args.seeds or c["seeds"]
    extra = c["overrides"] + extra
  args.seeds = args.seeds or 3
  if not args.aggregate:
    if not args.config:
      parser.error("--config is required unless --aggregate")
    try:
      axes = sweep.parse_grid(args.grid)
      sweep.write_spec(args.workdir, args.config, axes, list(range(args.seeds)), extra,
                       args.claim)
    except ValueError as e:
      raise SystemExit(str(e)) from None
    runs = sweep.expand(axes, list(range(args.seeds)))
    commands = {r.name: sweep.command(r, args.config, args.workdir, extra, SCRIPT)
                for r in runs}
    if args.list:
      print("\n".join(shlex.join(c) for c in commands.values()))
      return
    todo = {n: c for n, c in commands.items()
            if not sweep.finished(os.path.join(args.workdir, n))}
    print(f"{len(runs) - len(todo)} of {len(runs)} runs finished; running {len(todo)}")
    try:
      places = places_for(args.devices, args.config, extra, len(todo),
                          core_shares(max(1, min(args.jobs, len(todo)))))
      run_jobs({n.replace(os.sep, "__"): c for n, c in todo.items()}, places,
               os.path.join(args.workdir, "logs"))
    except ValueError as e:
      raise SystemExit(f"error: {e}") from None
    except RuntimeError as e:
      print(f"some runs failed: {e}")
      print(f"wrote {sweep_report.write(args.workdir)} from the runs that finished")
      raise SystemExit(1) from None
  print(f"wrote {sweep_report.write(args.workdir)}")


if __name__ == "__main__":
  main()
