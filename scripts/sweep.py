"""A grid of config values x seeds as ordinary recursive runs, then their statistics.

  python scripts/sweep.py --config configs/digits.py --workdir runs/sweep_n \
      --grid 'loop.n_train=32,64,128' --grid 'loop.selection=none,greedy' --seeds 3 \
      [--jobs 2] [--config.loop.generations=4 ...]
  python scripts/sweep.py ... --list        # one command line per run, for a scheduler
  python scripts/sweep.py --aggregate --workdir runs/sweep_n   # sweep.md from what finished
  python scripts/sweep.py --claim section3 --workdir runs/claim_section3 --jobs 2
  python scripts/sweep.py ... --launcher slurm --partition gpu --gpus-per-job 1 --time 240
      # each run a SLURM job (submitit), requeued when preempted; --dry-run shows the script

`--claim NAME` takes config, grid and seeds from configs/claims.py and adds that claim's
verdict (collapse_jax/study/claims.py) to sweep.md.

Re-running skips finished runs and resumes killed ones. On a CPU host `--jobs K` runs K
at once, each pinned to its share of the cores; on a GPU node or TPU VM the runs at once
follow from the devices and the config's mesh, each on its own (`--devices`), and `--jobs K`
caps them at K.
"""

import argparse
import os
import shlex
import sys

from collapse_jax.preemption import REQUEUE_EXIT
from collapse_jax.study import cluster, sweep, sweep_report
from collapse_jax.study.launch import Stopped, core_shares, places_for, run_jobs

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
  parser.add_argument("--jobs", type=int, default=None,
                      help="runs at most at once (default: 1 on a CPU host, each on its "
                      "share of the cores; as many as the devices hold on a device host)")
  parser.add_argument("--devices", default="auto",
                      help="auto, cpu, or gpu:N / tpu:N / cpu:N: runs at once on their own "
                      "devices (collapse_jax/study/devices.py)")
  parser.add_argument("--list", action="store_true", help="print the runs' command lines")
  parser.add_argument("--aggregate", action="store_true", help="only write sweep.md")
  parser.add_argument("--claim", default="", help="a claim of configs/claims.py")
  slurm = parser.add_argument_group("a scheduler (collapse_jax/study/cluster.py)")
  slurm.add_argument("--launcher", choices=cluster.LAUNCHERS, default=None,
                     help="submit each run as a job: slurm, or submitit's local executor")
  slurm.add_argument("--partition", default="")
  slurm.add_argument("--account", default="")
  slurm.add_argument("--gpus-per-job", type=int, default=1, help="GPUs per node of a job")
  slurm.add_argument("--nodes", type=int, default=1,
                     help="hosts per run (>1: one multi-node job joined by jax.distributed)")
  slurm.add_argument("--time", type=int, default=240, help="a job's time limit, minutes")
  slurm.add_argument("--cpus-per-task", type=int, default=0)
  slurm.add_argument("--signal-delay", type=int, default=90,
                     help="seconds before the time limit the run is told to checkpoint")
  slurm.add_argument("--wait", action="store_true",
                     help="wait for the jobs, then write sweep.md (always with local)")
  slurm.add_argument("--dry-run", action="store_true",
                     help="print the sbatch script of the first run instead of submitting")
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
    if args.launcher:
      return submit(args, todo, len(runs))
    try:
      at_once = max(1, min(args.jobs or len(todo), len(todo)))
      places = places_for(args.devices, args.config, extra, at_once,
                          core_shares(min(args.jobs or 1, at_once)))
      print(f"{len(runs) - len(todo)} of {len(runs)} runs finished; running {len(todo)}"
            + (f", {min(len(places), len(todo))} at a time" if todo else ""), flush=True)
      run_jobs({n.replace(os.sep, "__"): c for n, c in todo.items()}, places,
               os.path.join(args.workdir, "logs"))
    except ValueError as e:
      raise SystemExit(f"error: {e}") from None
    except Stopped as e:
      print(e, file=sys.stderr, flush=True)
      raise SystemExit(REQUEUE_EXIT) from None
    except RuntimeError as e:
      print(f"some runs failed: {e}")
      print(f"wrote {sweep_report.write(args.workdir)} from the runs that finished")
      raise SystemExit(1) from None
  print(f"wrote {sweep_report.write(args.workdir)}")


def submit(args, todo: dict[str, list[str]], total: int) -> None:
  """Each unfinished run as a job of the scheduler; waits and writes sweep.md with the local
  executor or --wait."""
  folder = os.path.join(args.workdir, "jobs")
  params = cluster.slurm_parameters(
      partition=args.partition, gpus=args.gpus_per_job, nodes=args.nodes, time_min=args.time,
      account=args.account, cpus_per_task=args.cpus_per_task, signal_delay_s=args.signal_delay)
  todo = {n: cluster.job_argv(c, args.nodes) for n, c in todo.items()}
  if args.dry_run:
    for name, argv in todo.items():
      print(f"# {name}: {shlex.join(argv)}")
    first = next(iter(todo), "run")
    print(cluster.sbatch_script(folder, {**params, "job_name": first.replace(os.sep, "__")}))
    return
  print(f"{total - len(todo)} of {total} runs finished; submitting {len(todo)} to "
        f"{args.launcher}")
  try:
    jobs = cluster.submit(cluster.executor(args.launcher, folder, params), todo,
                          os.path.join(folder, "jobs.json"))
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  if args.launcher == "slurm" and not args.wait:
    print(f"when they finish: python scripts/sweep.py --aggregate --workdir {args.workdir}")
    return
  failed = cluster.wait(jobs)
  print(f"wrote {sweep_report.write(args.workdir)}")
  if failed:
    print("some runs failed: " + "; ".join(failed))
    raise SystemExit(1)


if __name__ == "__main__":
  main()
