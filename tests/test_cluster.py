"""Sweeps on a scheduler (study/cluster.py): the sbatch script a 4-GPU job gets, and a real
sweep through submitit's local executor with one job preempted, requeued and resumed."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from collapse_jax.study import cluster, sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = os.path.join(REPO, "scripts", "sweep.py")


def test_the_sbatch_script_of_a_4_gpu_job(tmp_path):
  params = cluster.slurm_parameters(partition="gpu", gpus=4, time_min=600, account="lab",
                                    cpus_per_task=16, name="loop.n_train=64__seed=0")
  text = cluster.sbatch_script(str(tmp_path), params)
  print(text)
  lines = set(text.splitlines())
  for line in ("#SBATCH --gpus-per-node=4", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1",
               "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=600",
               "#SBATCH --cpus-per-task=16", "#SBATCH --signal=USR2@90",
               "#SBATCH --job-name=loop.n_train=64__seed=0"):
    assert line in lines, line
  # One srun task per node running submitit's job entry point with this Python.
  assert re.search(rf"^srun .* {re.escape(sys.executable)} -u -m submitit.core._submit "
                   rf"{re.escape(str(tmp_path))}$", text, re.M)


def test_a_run_on_several_hosts_joins_with_jax_distributed():
  argv = ["python", "scripts/recursive.py"]
  assert cluster.job_argv(argv, 1) == argv
  assert cluster.job_argv(argv, 4)[-1] == "--config.distributed.auto=True"
  assert "#SBATCH --nodes=4" in cluster.sbatch_script("/tmp/j", cluster.slurm_parameters(nodes=4))


def test_the_dry_run_prints_each_run_and_the_script(tmp_path):
  out = subprocess.run([sys.executable, SWEEP, "--config", "configs/digits.py:smoke",
                        "--workdir", str(tmp_path), "--grid", "loop.selection=none,greedy",
                        "--seeds", "1", "--launcher", "slurm", "--gpus-per-job", "4",
                        "--dry-run"], capture_output=True, text=True, cwd=REPO, timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.count("# loop.selection=") == 2
  assert "#SBATCH --gpus-per-node=4" in out.stdout


def _job_processes(folder: str) -> dict[str, int]:
  """Run name -> the pid of the submitit job process running it, from the jobs' logs."""
  found = {}
  for path in glob.glob(os.path.join(folder, "*_log.out")):
    with open(path) as f:
      for m in re.finditer(r"run (\S+): job process (\d+)", f.read()):
        found[m.group(1)] = int(m.group(2))
  return found


@pytest.mark.slow
def test_a_local_executor_sweep_with_a_job_preempted_and_requeued(tmp_path):
  """Two runs as submitit jobs; the first is sent SLURM's preemption signal (USR2) while it
  trains: submitit calls RunJob.checkpoint, the run checkpoints and exits 75, the job is
  requeued and the run resumes; then the sweep aggregates as without a scheduler."""
  args = [sys.executable, SWEEP, "--config", "configs/digits.py:smoke", "--workdir",
          str(tmp_path), "--grid", "loop.selection=none,greedy", "--seeds", "1",
          "--launcher", "local", "--config.train.num_steps=60",
          "--config.train.checkpoint_every=10"]
  proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  victim = "loop.selection=none/seed=0"
  steps = tmp_path / victim / "gen_01" / "model" / "train.jsonl"  # training is under way
  deadline = time.time() + 300
  while time.time() < deadline and not (steps.exists() and steps.read_text().strip()):
    time.sleep(0.2)
  pid = _job_processes(str(tmp_path / "jobs")).get(victim)
  assert pid, "the job never logged its process"
  os.kill(pid, signal.SIGUSR2)  # what SLURM sends before the time limit or on preemption
  out, _ = proc.communicate(timeout=900)
  print(out[-3000:])
  assert proc.returncode == 0, out[-3000:]
  logs = ""
  for path in sorted(glob.glob(str(tmp_path / "jobs" / "*_log.*"))):
    with open(path) as f:
      logs += f.read()
  assert "Requeued job" in logs, logs[-3000:]
  assert "preempted at generation 1/2" in logs, logs[-3000:]
  assert "resuming at generation 1/2" in logs or "resuming" in logs, logs[-3000:]
  for run in ("loop.selection=none/seed=0", "loop.selection=greedy/seed=0"):
    assert sweep.finished(str(tmp_path / run)), run
  ids = json.loads((tmp_path / "jobs" / "jobs.json").read_text())
  assert set(ids) == {"loop.selection=none/seed=0", "loop.selection=greedy/seed=0"}
  assert (tmp_path / "sweep.md").exists()
  aggregate = subprocess.run([sys.executable, SWEEP, "--aggregate", "--workdir", str(tmp_path)],
                             capture_output=True, text=True, cwd=REPO, timeout=300)
  assert aggregate.returncode == 0, aggregate.stderr
