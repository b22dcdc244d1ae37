"""Preemption: stop at a step every process agrees on, checkpoint, exit for a requeue.

Spot and preemptible TPU VMs and SLURM send SIGTERM (SLURM: also the signal its --signal
option names, `config.distributed.preemption_signal`) some seconds before they stop a job.
The training loop and the recursive loop call `reached()` after every train step and at
every phase boundary; when it says so they write their checkpoints and raise `Preempted`,
which the command line turns into one line and exit code REQUEUE_EXIT.

One process: a signal handler sets a flag. Several: JAX's coordination service catches
SIGTERM on any host and picks the step all of them stop at
(`multihost_utils.reached_preemption_sync_point`, as orbax's CheckpointManager does); a
configured other signal is passed on to it as SIGTERM.
"""

import os
import signal

import jax
from jax.experimental import multihost_utils

from collapse_jax.errors import ConfigError

REQUEUE_EXIT = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure; run the command again

_state = {"signal": "", "calls": 0}


class Preempted(Exception):  # noqa: N818 (not an error: the run stopped where it was told)
  """Raised once the checkpoints are written; args[0] says where the run stopped."""


def _flag(signum, frame):
  del frame
  _state["signal"] = signal.Signals(signum).name


def _to_jax(signum, frame):
  del signum, frame
  os.kill(os.getpid(), signal.SIGTERM)  # JAX's preemption notifier listens for SIGTERM


def signal_number(name: str) -> int:
  """The number of a signal named like 'SIGUSR1'; a ConfigError for anything else."""
  if not name.startswith("SIG") or name.startswith("SIG_") or not hasattr(signal, name):
    raise ConfigError(f"config.distributed.preemption_signal={name!r} is not a signal name; "
                      "use one like 'SIGUSR1' (SLURM's --signal=USR1@90), or '' for none.")
  return int(getattr(signal, name))


def install(extra_signal: str = "") -> None:
  """Catch SIGTERM and `extra_signal` (a name, '' for none) from here on."""
  multi = jax.process_count() > 1
  names = {"SIGTERM"} | ({extra_signal} if extra_signal else set())
  for name in sorted(names):
    if multi and name == "SIGTERM":
      continue  # jax.distributed.initialize installed the coordination service's handler
    signal.signal(signal_number(name), _to_jax if multi else _flag)
  _state["signal"], _state["calls"] = "", 0


def reached() -> bool:
  """Whether to checkpoint and stop now. Every process calls it at the same points (the
  count of calls is the step id JAX's sync point agrees on), so they stop together."""
  if jax.process_count() > 1:
    _state["calls"] += 1
    return multihost_utils.reached_preemption_sync_point(_state["calls"])
  return bool(_state["signal"])
