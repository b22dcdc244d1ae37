"""A sweep's runs as jobs of a cluster's scheduler, through submitit: each run its own SLURM
job with its own GPUs, requeued when preempted or out of time, resumed from its workdir.

submitit's local executor runs the same jobs as processes on this machine (the tests, and
`--launcher local`): the same code path as SLURM but the submission.

Preemption: SLURM signals a job before its time limit or when preempting it (`--signal=
USR2@<signal_delay_s>`, which submitit sets); submitit then calls `RunJob.checkpoint`,
which stops the run with SIGTERM (collapse_jax/preemption.py: it checkpoints at the next
step and exits 75) and hands back the same job, which submitit requeues. A SIGTERM that
reaches the run directly ends it the same way, and the job requeues itself.
"""

import json
import os
import signal
import subprocess
import sys
import time

from collapse_jax import preemption

STOP_WAIT_S = 80  # a run's stop on SIGTERM is one step and a checkpoint; SLURM gives 90 s
LAUNCHERS = ("slurm", "local")


def _wait(proc, timeout: float = float("inf")) -> int | None:
  """The exit code of `proc`, or None after `timeout` seconds. Polls rather than blocking
  in Popen.wait: `checkpoint` waits from a signal handler that interrupts this wait, and a
  blocking wait would hold the lock the handler's own wait needs."""
  deadline = time.monotonic() + timeout
  while (code := proc.poll()) is None and time.monotonic() < deadline:
    time.sleep(0.2)
  return code


class RunJob:
  """One run of a sweep as a submitit job: its command line in a child process."""

  def __init__(self, name: str, argv: list[str]):
    self.name, self.argv = name, list(argv)
    self._proc = None
    self._stopping = False

  def __call__(self) -> str:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    self._proc = subprocess.Popen(self.argv, env=env)
    print(f"run {self.name}: job process {os.getpid()}, run process {self._proc.pid}",
          flush=True)
    code = _wait(self._proc)
    if code == preemption.REQUEUE_EXIT and not self._stopping:
      self._requeue_self()
    if code:
      raise RuntimeError(f"run {self.name} exited with {code}: {' '.join(self.argv)}")
    return self.name

  def checkpoint(self, *args, **kwargs):
    """Called by submitit on the scheduler's preemption or time-limit signal: stops the run
    (it checkpoints and exits 75) and returns the same job to requeue; the run resumes
    from its workdir."""
    import submitit  # noqa: PLC0415 (an optional dependency: the slurm extra)

    self._stopping = True
    if self._proc is not None and self._proc.poll() is None:
      self._proc.send_signal(signal.SIGTERM)
      if _wait(self._proc, STOP_WAIT_S) is None:
        self._proc.kill()  # its last checkpoint stands
    return submitit.helpers.DelayedSubmission(RunJob(self.name, self.argv))

  def _requeue_self(self) -> None:
    """The run was preempted by a signal that reached it, not the job: requeue the job."""
    import submitit  # noqa: PLC0415

    env = submitit.JobEnvironment()
    print(f"run {self.name} was preempted (exit {preemption.REQUEUE_EXIT}); requeueing job "
          f"{env.job_id}", flush=True)
    env._requeue(countdown=0)  # submitit's own requeue (scontrol requeue; local: exit code)
    sys.exit(preemption.REQUEUE_EXIT)

  def __getstate__(self):
    return {"name": self.name, "argv": self.argv}

  def __setstate__(self, state):
    self.__init__(state["name"], state["argv"])


def slurm_parameters(*, partition: str = "", gpus: int = 1, nodes: int = 1,
                     time_min: int = 240, account: str = "", cpus_per_task: int = 0,
                     signal_delay_s: int = 90, name: str = "collapse_jax") -> dict:
  """submitit's SLURM parameters for one run per job: `gpus` per node, one process per node
  (it takes every GPU of its node), `nodes` hosts."""
  params = dict(time=time_min, nodes=nodes, ntasks_per_node=1, gpus_per_node=gpus,
                signal_delay_s=signal_delay_s, job_name=name)
  params.update({k: v for k, v in (("partition", partition), ("account", account),
                                   ("cpus_per_task", cpus_per_task)) if v})
  return params


def executor(launcher: str, folder: str, params: dict, max_requeues: int = 3):
  """A submitit executor: SLURM with `params` (slurm_parameters), or the local one (its time
  limit and signal delay from them)."""
  import submitit  # noqa: PLC0415 (an optional dependency: the slurm extra)

  if launcher == "local":
    ex = submitit.LocalExecutor(folder, max_num_timeout=max_requeues)
    ex.update_parameters(timeout_min=params["time"], signal_delay_s=params["signal_delay_s"])
    return ex
  if launcher != "slurm":
    raise ValueError(f"--launcher={launcher!r}: use one of {LAUNCHERS}.")
  try:
    ex = submitit.SlurmExecutor(folder, max_num_timeout=max_requeues)
  except RuntimeError as e:  # no srun: not a SLURM host
    raise ValueError(f"--launcher=slurm: {e} (--dry-run prints the sbatch script "
                     "anywhere)") from None
  ex.update_parameters(**params)
  return ex


def job_argv(argv: list[str], nodes: int) -> list[str]:
  """A run's command line as a job runs it: several nodes join with jax.distributed."""
  return list(argv) + (["--config.distributed.auto=True"] if nodes > 1 else [])


def sbatch_script(folder: str, params: dict) -> str:
  """The sbatch script submitit writes for one run with `params` (its own template)."""
  import shlex  # noqa: PLC0415

  from submitit.slurm.slurm import _make_sbatch_string  # noqa: PLC0415

  command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit",
                      shlex.quote(str(folder))])
  return _make_sbatch_string(command=command, folder=folder, **params)


def submit(ex, runs: dict[str, list[str]], record: str) -> list:
  """Submits each run (name -> argv) as a job; appends name -> job id to `record`."""
  jobs, ids = [], {}
  if os.path.exists(record):
    with open(record) as f:
      ids = json.load(f)
  for name, argv in runs.items():
    if "job_name" in ex.parameters:  # SLURM: the run's name in squeue
      ex.update_parameters(job_name=name.replace(os.sep, "__"))
    job = ex.submit(RunJob(name, argv))
    jobs.append(job)
    ids[name] = job.job_id
    print(f"submitted {name}: job {job.job_id}", flush=True)
  with open(record, "w") as f:
    json.dump(ids, f, indent=1)
  return jobs


def wait(jobs) -> list[str]:
  """Waits for every job; returns the names of those that failed, with their logs."""
  failed = []
  for job in jobs:
    try:
      job.result()
    except Exception as e:  # noqa: BLE001 (submitit re-raises the run's error, any type)
      failed.append(f"job {job.job_id} failed (log: {job.paths.stdout}): "
                    f"{str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}")
  return failed
