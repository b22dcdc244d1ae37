"""Atomic, resumable checkpoints with orbax: the train state plus JSON metadata beside it."""

import os

import jax
import orbax.checkpoint as ocp


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


def restore_latest(manager: ocp.CheckpointManager, abstract_state):
  """(step, state, meta) of the newest complete checkpoint, or None if there is none."""
  step = manager.latest_step()
  if step is None:
    return None
  restored = manager.restore(
      step,
      args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
      ),
  )
  return step, restored["state"], restored["meta"]
