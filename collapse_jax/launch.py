"""Several runs as processes side by side on one machine, their output kept apart.

On a 2-core CPU three small-UNet runs at once train ~10% more images per second in total
than one run using both cores, and a comparison finishes when its slowest arm does.
"""

import os
import subprocess
import sys
import threading


def _pump(name: str, stream, log_path: str, lock: threading.Lock) -> None:
  with open(log_path, "a") as log:
    for line in stream:
      log.write(line)
      log.flush()
      with lock:
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()


def run_parallel(jobs: dict[str, list[str]], log_dir: str) -> None:
  """Starts every job (name -> argv) at once and waits for all of them; each line a job
  prints goes to `log_dir/<name>.log` and to stdout prefixed with `[name]`. Raises
  RuntimeError naming each job that failed, with its exit code and log."""
  os.makedirs(log_dir, exist_ok=True)
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  lock = threading.Lock()
  procs, pumps = {}, []
  for name, argv in jobs.items():
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    pump = threading.Thread(target=_pump, daemon=True, args=(
        name, proc.stdout, os.path.join(log_dir, f"{name}.log"), lock))
    pump.start()
    procs[name], pumps = proc, pumps + [pump]
  try:
    codes = {name: proc.wait() for name, proc in procs.items()}
  except BaseException:  # Ctrl-C: stop every job (each resumes when run again)
    for proc in procs.values():
      proc.kill()
    raise
  for pump in pumps:
    pump.join()
  failed = {name: code for name, code in codes.items() if code}
  if failed:
    raise RuntimeError("; ".join(
        f"{name} exited with {code} (log: {os.path.join(log_dir, name + '.log')})"
        for name, code in failed.items()))
