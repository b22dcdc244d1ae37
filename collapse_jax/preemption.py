"""Preemption: stop at a step every process agrees on, checkpoint, exit for a requeue.

Spot and preemptible TPU VMs and SLURM send SIGTERM (SLURM: also the signal its --signal
option names, `config.distributed.preemption_signal`) some seconds before they stop a job.
The training loop and the recursive loop call `reached()` after every train step and at
every phase boundary; when it says so they write their checkpoints and raise `Preempted`,
which the command line turns into one line and exit code REQUEUE_EXIT.

A signal handler sets a flag. With several processes `reached()` is a collective: every
process stops at the first call at which any of them has the flag (`distributed.anywhere`,
one allgather of a bool per call: per K train steps with `train.steps_per_call`). JAX's own
sync point (`multihost_utils.reached_preemption_sync_point`) was used before and let two
processes pick different steps when the notice reached its coordinator while one of them
was already past the step it chose (a hang in the next collective, seen in
tests/test_multiprocess.py on a loaded CPU); the collective cannot disagree.
"""

import signal

from collapse_jax import distributed
from collapse_jax.errors import ConfigError

REQUEUE_EXIT = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure; run the command again

_state = {"signal": ""}


class Preempted(Exception):  # noqa: N818 (not an error: the run stopped where it was told)
  """Raised once the checkpoints are written; args[0] says where the run stopped."""


def _flag(signum, frame):
  del frame
  _state["signal"] = signal.Signals(signum).name


def signal_number(name: str) -> int:
  """The number of a signal named like 'SIGUSR1'; a ConfigError for anything else."""
  if not name.startswith("SIG") or name.startswith("SIG_") or not hasattr(signal, name):
    raise ConfigError(f"config.distributed.preemption_signal={name!r} is not a signal name; "
                      "use one like 'SIGUSR1' (SLURM's --signal=USR1@90), or '' for none.")
  return int(getattr(signal, name))


def install(extra_signal: str = "") -> None:
  """Catch SIGTERM and `extra_signal` (a name, '' for none) from here on (in place of the
  handler `jax.distributed.initialize` installs for its own sync point)."""
  names = {"SIGTERM"} | ({extra_signal} if extra_signal else set())
  for name in sorted(names):
    signal.signal(signal_number(name), _flag)
  _state["signal"] = ""


def reached() -> bool:
  """Whether to checkpoint and stop now: this process got the signal, or (several
  processes, a collective every one of them makes at the same points) any process did."""
  return distributed.anywhere(bool(_state["signal"]))
