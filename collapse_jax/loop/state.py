"""The loop's run state (`RunState`) and its checkpoints (`LoopStore`).

The state at every phase boundary (generations finished, the phase under way, the current
training set, the pools kept, metric rows so far) is an orbax checkpoint in
workdir/loop_state, at step 2g (generation g finished) and 2g + 1 (generation g + 1
sampled). Each process writes and reads its own rows of the sets; a torn checkpoint is
passed over for the last intact one. metrics.jsonl / metrics.csv are derived from it.
"""

import dataclasses
import logging
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from collapse_jax import checkpoint
from collapse_jax.data.sets import ImageSet
from collapse_jax.metrics.writer import sync_rows
from collapse_jax.sharding import rows_sharding

log = logging.getLogger(__name__)

PHASES = ("train", "select")  # fit and sample / select, measure and save


@dataclasses.dataclass
class RunState:
  """Where a run stands: `generation` generations finished, `phase` of the next under way,
  the training set it trains on, the pools kept (accumulate keeps every one), the metric
  rows so far, and (phase select) the finished phase's timings and generator metrics."""

  generation: int
  phase: str
  current: ImageSet
  pools: list[ImageSet]
  rows: list[dict]
  timing: dict = dataclasses.field(default_factory=dict)

  @property
  def step(self) -> int:
    return 2 * self.generation + PHASES.index(self.phase)

  def meta(self) -> dict:
    return {"generation": self.generation, "phase": self.phase, "rows": self.rows,
            **self.timing}

  @classmethod
  def from_meta(cls, meta: dict, current: ImageSet, pools: list[ImageSet]) -> "RunState":
    timing = {k: v for k, v in meta.items() if k not in ("generation", "phase", "rows")}
    return cls(meta["generation"], meta["phase"], current, pools, meta["rows"], timing)


def _pack(s: ImageSet) -> dict:
  d = {"images": s.images, "sources": s.sources}
  if s.labels is not None:
    d["labels"] = s.labels
  return d


def _unpack(d: dict) -> ImageSet:
  labels = np.asarray(d["labels"]) if "labels" in d else None
  return ImageSet(d["images"], labels, np.asarray(d["sources"]))


class LoopStore:
  """workdir/loop_state: save and restore `RunState`s, images on the mesh split by rows."""

  def __init__(self, workdir: str, mesh):
    self.workdir, self.mesh = workdir, mesh
    self.manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "loop_state")),
        options=ocp.CheckpointManagerOptions(max_to_keep=2),
        # Named handlers let a fresh process read the saved shapes (item_metadata).
        item_handlers={"arrays": ocp.StandardCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()})

  def save(self, state: RunState) -> None:
    """Every process writes its own rows of the sets (orbax, multi-host)."""
    arrays = {"current": _pack(state.current), "pools": [_pack(p) for p in state.pools]}
    self.manager.save(state.step, args=ocp.args.Composite(
        arrays=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(state.meta())))
    self.manager.wait_until_finished()

  def restore(self) -> RunState | None:
    """The newest intact state, images restored straight onto the mesh split by rows (the
    shapes from the checkpoint's own metadata); None when there is none."""
    mesh = self.mesh

    def target(path, saved):
      if path[-1].key == "images":
        return jax.ShapeDtypeStruct(saved.shape, saved.dtype,
                                    sharding=rows_sharding(mesh, saved.shape[0]))
      return np.zeros(saved.shape, saved.dtype)  # labels and sources: host arrays

    def restore(step):
      saved = self.manager.item_metadata(step)["arrays"].tree
      r = self.manager.restore(step, args=ocp.args.Composite(
          arrays=ocp.args.StandardRestore(jax.tree_util.tree_map_with_path(target, saved)),
          meta=ocp.args.JsonRestore()))
      jax.block_until_ready(r["arrays"])  # a torn file fails here, and an older step is used
      return r

    found = checkpoint.restore_intact(self.manager, restore)
    if found is None:
      return None
    arrays, meta = found[1]["arrays"], found[1]["meta"]
    return RunState.from_meta(meta, _unpack(arrays["current"]),
                              [_unpack(p) for p in arrays["pools"]])

  def sync_metrics(self, rows: list[dict]) -> None:
    """metrics.jsonl and metrics.csv are derived from the loop state (the source of truth):
    rewritten atomically, with a warning, whenever they disagree with its finished rows."""
    repaired = sync_rows(self.workdir, "metrics", [(r["generation"], r) for r in rows])
    if repaired:
      log.warning("repaired: %s", repaired)

  def close(self) -> None:
    self.manager.close()
