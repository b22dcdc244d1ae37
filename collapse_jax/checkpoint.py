"""Atomic, resumable checkpoints with orbax: the train state plus JSON metadata beside it.

A step that no longer restores (a torn or truncated file) is passed over for the newest
one that does, and moved aside to `<directory>.damaged/` with a warning; if no step
restores, that is a WorkdirError (a changed config must not silently restart a run).
"""

import logging
import os
import shutil
import time

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from collapse_jax import distributed
from collapse_jax.errors import WorkdirError

log = logging.getLogger(__name__)


def make_manager(directory: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
  """An orbax manager writing to `directory` (atomic: a step appears only once complete)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(manager: ocp.CheckpointManager, step: int, state, meta: dict) -> None:
  """Saves `state` (sharded pytree) and `meta` (JSON-able) as checkpoint `step`."""
  manager.save(
      step,
      args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
  )


def abstract_like(state, shardings):
  """ShapeDtypeStructs carrying the target shardings, for a sharded restore."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
  )


# Attempts at a step before it counts as damaged: a read error one process sees alone may
# pass (a network filesystem's hiccup), and must not move a good checkpoint aside.
READ_ATTEMPTS = 3
RETRY_WAIT_S = 0.5


def restore_intact(manager: ocp.CheckpointManager, restore_step):
  """(step, restore_step(step)) for the newest step that restores, or None without steps.

  Every process takes the same decisions: the steps are process 0's list, and a step is
  used only once it restored on every process (each failed read is retried). Steps newer
  than it failed: since an older one restores into the same target, they are damaged, not
  of another config, and are moved aside by process 0. If none restores, a WorkdirError
  names the directory."""
  steps = distributed.agree_ints(sorted(manager.all_steps(), reverse=True))
  first_error = None
  for i, step in enumerate(steps):
    for attempt in range(1, READ_ATTEMPTS + 1):
      try:
        out, error = restore_step(step), None
      except Exception as e:  # noqa: BLE001 (any read error; re-raised below if none restores)
        out, error = None, e
        log.warning("checkpoint %s/%d does not restore here (attempt %d/%d; %s: %s)",
                    manager.directory, step, attempt, READ_ATTEMPTS, type(e).__name__,
                    str(e).splitlines()[0][:200])
      if distributed.everywhere(error is None):
        break
      first_error = first_error or error
      if attempt < READ_ATTEMPTS:
        time.sleep(RETRY_WAIT_S * attempt)
    else:
      log.warning("checkpoint %s/%d does not restore on every process; trying the one before",
                  manager.directory, step)
      continue
    if i:
      _move_aside(manager, steps[:i])
    return step, out
  if steps:
    why = (f"{type(first_error).__name__}: {str(first_error).splitlines()[0][:200]}"
           if first_error is not None else "read errors on another process")
    raise WorkdirError(
        f"no checkpoint in {manager.directory} restores (newest, step {steps[0]}: {why}): "
        "torn files, or a run of another model; move the directory aside to start that part "
        "over.") from first_error
  return None


def _move_aside(manager: ocp.CheckpointManager, steps: list[int]) -> None:
  directory = os.fspath(manager.directory)
  aside = directory.rstrip("/") + ".damaged"
  if jax.process_index() == 0:
    os.makedirs(aside, exist_ok=True)
    for step in steps:
      dest = os.path.join(aside, f"{step}-{int(time.time())}")
      shutil.move(os.path.join(directory, str(step)), dest)
      log.warning("moved the damaged checkpoint %s/%d aside to %s", directory, step, dest)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("checkpoint-moved-aside")
  manager.reload()


def restore_latest(manager: ocp.CheckpointManager, abstract_state):
  """(step, state, meta) of the newest intact checkpoint, or None if there is none."""

  def restore(step):
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
        ),
    )
    # Reading every array now: a torn file fails here, not later inside a train step.
    jax.block_until_ready(jax.tree.map(jnp.sum, restored["state"]))
    return restored

  found = restore_intact(manager, restore)
  if found is None:
    return None
  step, restored = found
  return step, restored["state"], restored["meta"]
