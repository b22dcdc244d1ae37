"""One run per workdir: an exclusive lock that names its holder and dies with it.

Sweeps and schedulers make a second launch on a busy workdir easy; two runs writing one
workdir corrupt each other's checkpoints and metrics. The lock is an `fcntl.flock` on
`workdir/.lock`, which the kernel releases when the holding process exits however it
exits, so a killed run never blocks its own resume. Process 0 of a multi-host run holds it
for the whole run; the run's other processes share the workdir under it.
"""

import fcntl
import os
import socket

from collapse_jax.errors import WorkdirError

LOCK_NAME = ".lock"
_held: dict[str, int] = {}  # workdir -> open lock fd, for the life of this process


def claim(workdir: str) -> None:
  """Takes the workdir's lock for this process (again: a no-op), or raises RuntimeError
  naming the workdir and the host and pid of the run that holds it."""
  path = os.path.realpath(workdir)
  if path in _held:
    return
  os.makedirs(path, exist_ok=True)
  fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
    os.close(fd)
    raise WorkdirError(
        f"workdir {workdir} is in use by the run {holder}; wait for it to finish (re-running "
        "the same command then resumes or reports it finished), stop it, or use another "
        "--workdir.") from None
  os.ftruncate(fd, 0)
  os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
  _held[path] = fd


def release(workdir: str) -> None:
  """Drops this process's lock on the workdir (the process exiting does the same)."""
  fd = _held.pop(os.path.realpath(workdir), None)
  if fd is not None:
    os.close(fd)
