"""Several runs as processes side by side on one machine, their output kept apart, each in
its own place: a share of the CPU cores, or its own accelerators (study/devices.py).

On a 2-core CPU three small-UNet runs at once train ~10% more images per second in total
than one run using both cores, and a comparison finishes when its slowest arm does.
"""

import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

from collapse_jax.preemption import REQUEUE_EXIT
from collapse_jax.study import devices, sweep


class Stopped(Exception):  # noqa: N818 (not an error: the launcher was told to stop)
  """The launcher got SIGTERM: each running job was passed it (a run checkpoints and exits
  REQUEUE_EXIT) and no pending job started; args[0] says which is which."""


def _pump(name: str, stream, log_path: str, lock: threading.Lock) -> None:
  with open(log_path, "a") as log:
    for line in stream:
      log.write(line)
      log.flush()
      with lock:
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()


def _child_setup(cores):
  """In the child before exec: die with the launcher (Linux PR_SET_PDEATHSIG), so a killed
  sweep leaves no orphan holding a workdir; pin to `cores` when given."""
  try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
  except OSError:  # not glibc: orphans run on and finish their runs
    pass
  if cores is not None:
    os.sched_setaffinity(0, cores)


def _start(name, argv, log_dir, lock, cores=None, env=None):
  env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
  proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, preexec_fn=lambda: _child_setup(cores))
  pump = threading.Thread(target=_pump, daemon=True, args=(
      name, proc.stdout, os.path.join(log_dir, f"{name}.log"), lock))
  pump.start()
  return proc, pump


def _raise_failed(codes: dict[str, int], log_dir: str) -> None:
  failed = {name: code for name, code in codes.items() if code}
  if failed:
    raise RuntimeError("; ".join(
        f"{name} exited with {code} (log: {os.path.join(log_dir, name + '.log')})"
        for name, code in failed.items()))


@dataclasses.dataclass(frozen=True)
class Place:
  """Where one job runs: extra environment (a device set, devices.Slot.env) and cores."""

  env: dict = dataclasses.field(default_factory=dict)
  cores: frozenset | None = None


def core_shares(slots: int) -> list[Place]:
  """`slots` places, each pinned to its share of this process's CPU cores (none for one)."""
  cores = sorted(os.sched_getaffinity(0))
  if slots <= 1:
    return [Place()]
  return [Place(cores=frozenset(cores[i::slots]) or frozenset(cores)) for i in range(slots)]


def device_places(slots: list[devices.Slot]) -> list[Place]:
  """One place per device slot (see study/devices.py); one unpinned place for none."""
  return [Place(env=dict(s.env)) for s in slots] or [Place()]


def run_jobs(jobs: dict[str, list[str]], places: list[Place], log_dir: str,
             wait_for: dict[str, Callable[[], bool]] | None = None) -> None:
  """Runs the jobs (name -> argv) in order, one per free place, and waits for all; each
  line a job prints goes to `log_dir/<name>.log` and to stdout prefixed with `[name]`. A
  job named in `wait_for` starts once its predicate is true (or no job is left running).
  Every job runs even when one fails; then RuntimeError names each failure, its exit code
  and its log. SIGTERM (a scheduler's preemption) is passed on to the running jobs, which
  checkpoint and exit; no other job starts, and `Stopped` says what to rerun."""
  os.makedirs(log_dir, exist_ok=True)
  wait_for = wait_for or {}
  lock, pending, running, codes = threading.Lock(), list(jobs), {}, {}
  term, told = threading.Event(), set()
  main = threading.current_thread() is threading.main_thread()
  previous = signal.signal(signal.SIGTERM, lambda *_: term.set()) if main else None
  try:
    while running or (pending and not term.is_set()):
      idle = not running
      for slot, place in enumerate(places):
        ready = [n for n in pending if n not in wait_for or idle or wait_for[n]()]
        if slot not in running and ready and not term.is_set():
          name = ready[0]
          pending.remove(name)
          running[slot] = (name, *_start(name, jobs[name], log_dir, lock, place.cores,
                                         place.env))
          idle = False
      for slot, (name, proc, pump) in list(running.items()):
        if term.is_set() and name not in told:  # polled: a job started as it came gets it
          proc.send_signal(signal.SIGTERM)
          told.add(name)
        if proc.poll() is not None:
          pump.join()
          codes[name] = proc.returncode
          del running[slot]
      if running or pending:
        threading.Event().wait(0.2)
  except BaseException:  # Ctrl-C: stop every job (each resumes when run again)
    for _, proc, _ in running.values():
      proc.kill()
    raise
  finally:
    if main:
      signal.signal(signal.SIGTERM, previous)
  if term.is_set():
    failed = {n: c for n, c in codes.items() if c not in (0, REQUEUE_EXIT)}
    if not failed:
      stopped = sorted(n for n, c in codes.items() if c == REQUEUE_EXIT)
      raise Stopped(f"stopped by SIGTERM: {len(codes) - len(stopped)} job(s) finished, "
                    f"{len(stopped)} checkpointed ({', '.join(stopped) or 'none'}), "
                    f"{len(pending)} not started; run the same command again to go on")
  _raise_failed(codes, log_dir)


def run_parallel(jobs: dict[str, list[str]], log_dir: str,
                 wait_for: dict[str, Callable[[], bool]] | None = None) -> None:
  """Every job at once (as `run_jobs` with a place each, unpinned)."""
  run_jobs(jobs, [Place()] * max(1, len(jobs)), log_dir, wait_for)


def places_for(devices_spec: str, config: str, overrides: list[str], jobs: int,
               cpu_places: list[Place]) -> list[Place]:
  """The places for `jobs` runs of `config` (file[:variants] plus --config.* overrides) on
  the devices `devices_spec` names (study/devices.parse), printed; `cpu_places` on a plain
  CPU host."""
  host = devices.parse(devices_spec)
  if host.devices == 0:
    return cpu_places
  cfg = sweep.load_config(config)
  sweep.apply_overrides(cfg, [o for o in overrides if o.startswith("--config.")])
  slots = devices.plan(host, jobs, devices.need_of(cfg))
  shown = " | ".join(s.describe() for s in slots)
  print(f"{host.devices} {host.platform} devices: {len(slots)} of {jobs} jobs at a time "
        f"({shown})", flush=True)
  return device_places(slots)
