"""The self-consuming loop: train -> generate -> embed -> select -> next training set.

The generative model is whatever `config.model.kind` names (`collapse_jax.generators`): the
loop only asks it to fit a set and to sample from what it fitted.

A generation's phases: fit and sample (`_fit_and_sample`), select the next training set
(`_next_set`, which embeds the pool for the selection), measure (loop/measure.py), save.
The run's state (`loop/state.py:RunState`) is checkpointed at each phase boundary in
workdir/loop_state, models inside workdir/gen_XX/model. Re-running the same command after
a kill continues where it stopped and gives the same results; random numbers derive from
(seed, generation) only.

The rows of every set (real, pools, training sets: uint8 images, or float32 vectors for
vector data) live on the mesh as global arrays split by rows, from sampling through
embedding, selection and training: a candidate pool never gathers onto a host, and each
process checkpoints its own rows.
"""

import functools
import logging
import os
import time
from typing import Any, NamedTuple

import jax
import numpy as np

from collapse_jax import config_lib, distributed, platform, preemption
from collapse_jax.data.sets import ImageSet
from collapse_jax.errors import ConfigError
from collapse_jax.generators import make_generator
from collapse_jax.loop import measure, report
from collapse_jax.loop.embed import Embedder
from collapse_jax.loop.paradigms import next_training_set
from collapse_jax.loop.real import full_split, host_rows, real_statistics, split_indices, split_real
from collapse_jax.loop.select import make_select_fn
from collapse_jax.loop.state import LoopStore, RunState
from collapse_jax.sharding import make_mesh, rows_sharding

log = logging.getLogger(__name__)

# A generation's fit and sampling that took less than this are redone after a kill rather
# than checkpointed (closed-form generators: a save costs more than they do).
REDO_CHEAPER_S = 2.0


class Run(NamedTuple):
  """What stays fixed over a run's generations."""

  config: Any
  workdir: str
  mesh: jax.sharding.Mesh
  generator: Any
  real: ImageSet
  real_stats: dict
  embed: Embedder
  select: Any  # loop/select.py: select(candidates, n, rng) -> indices
  num_classes: int
  pool_size: int


def run_recursive(config, workdir: str, overwrite: bool = False, preflight=None) -> list[dict]:
  """Runs config.loop.generations generations; returns the per-generation metric rows.
  `preflight(config)` runs once config and data are valid (config_lib.prepare_run)."""
  config_lib.validate_loop(config)
  lc = config.loop
  ds, data_shape = config_lib.prepare_run(config, workdir, overwrite, preflight)
  mesh = make_mesh(config.mesh)
  for line in platform.describe(mesh):
    log.info("%s", line)
  generator = make_generator(config, data_shape, ds.num_classes, mesh)

  # Every set of the loop lives on the mesh, split by rows; only indices visit the host.
  parts = split_indices(len(ds.images), lc, config.seed)
  real, heldout = split_real(ds, parts, lc, generator.conditional, mesh)
  embed = Embedder.from_config(config, mesh, os.path.join(workdir, "features"))
  if ds.is_image and (config.features == "learned" or config.eval.learned):
    if heldout.labels is not None and len(np.unique(heldout.labels)) > 1:
      embed.fit_learned(host_rows(ds, parts[1]), heldout.labels, config.seed)
    elif config.features == "learned":
      raise ConfigError(
          f"config.features='learned' trains its encoder on labelled held-out real images, "
          f"and data.name={config.data.name!r} with loop.n_heldout={lc.n_heldout} leaves "
          "none: use a labelled dataset with held-out rows, or features='pixels'.")
  full = full_split(ds, mesh)
  run = Run(config, workdir, mesh, generator, real,
            real_statistics(real, heldout, embed, lc, full),
            embed, make_select_fn(lc, mesh, functools.partial(embed, config.features)),
            ds.num_classes, len(real) * lc.pool_factor)
  for name, size in (("n_train", len(real)), ("n_train * pool_factor", run.pool_size)):
    if mesh.size > 1 and rows_sharding(mesh, size).is_fully_replicated:
      log.warning("config.loop.%s = %d divides over no axis of the mesh %s: those sets are "
                  "replicated on every device. Use a multiple of the device count.", name,
                  size, dict(mesh.shape))

  G = lc.generations
  store = LoopStore(workdir, mesh)
  state = store.restore()
  if state is None:
    state = RunState(0, "train", real, [], [])
    store.save(state)
  else:
    store.sync_metrics(state.rows)  # a torn or stale metrics file is repaired first
    if state.generation >= G:
      log.info("%s already finished all %d generations; nothing to do.", workdir, G)
      return state.rows
    log.info("resuming at generation %d/%d, phase %s", state.generation + 1, G, state.phase)

  where = {}
  try:
    return _generations(run, store, state, where)
  except (KeyboardInterrupt, preemption.Preempted) as e:  # the one-line message says where
    detail = f", {e.args[0]}" if isinstance(e, preemption.Preempted) and e.args else ""
    raise type(e)(f"at generation {where.get('generation', '?')}/{G}, phase "
                  f"{where.get('phase', '?')}{detail}") from e


def _fit_and_sample(run: Run, current: ImageSet, key, generation: int,
                    prefix: str) -> tuple[ImageSet, dict]:
  """Fits the generator to the training set, then samples the candidate pool (labels
  cycling over the classes for a conditional model). Returns the pool and the phase's
  timings and the generator's own metrics, for the row."""
  train_key, sample_key = jax.random.split(key)
  t0 = time.perf_counter()
  fitted = run.generator.fit(current, train_key, generation=generation, workdir=run.workdir,
                             log_prefix=prefix + "train ")
  t1 = time.perf_counter()
  size = run.pool_size
  labels = (np.arange(size, dtype=np.int32) % run.num_classes if run.generator.conditional
            else None)
  log.info("%sgenerating %d samples", prefix, size)
  pool = ImageSet(run.generator.sample(fitted, sample_key, size, labels), labels,
                  np.full(size, generation, np.int32))
  t2 = time.perf_counter()
  log.info("%s%d samples in %.1fs (%.0f samples/s)", prefix, size, t2 - t1, size / (t2 - t1))
  return pool, {"train_s": t1 - t0, "generate_s": t2 - t1, "model_metrics": fitted.metrics}


def _sampled(run: Run, store: LoopStore, state: RunState, prefix: str) -> RunState:
  """Phase train: fit and sample generation state.generation + 1; saved unless cheaper to
  redo; a preemption stops here, saved."""
  g, lc = state.generation, run.config.loop
  key = jax.random.fold_in(jax.random.key(run.config.seed), g)
  pool, timing = _fit_and_sample(run, state.current, key, g + 1, prefix)
  # Only accumulate draws from old pools; the other paradigms keep just the newest.
  pools = (state.pools if lc.paradigm == "accumulate" else []) + [pool]
  state = RunState(g, "select", state.current, pools, state.rows, timing)
  # Process 0's clock decides (a save is a collective); a preemption always saves.
  stop = preemption.reached()
  if stop or distributed.agree(timing["train_s"] + timing["generate_s"] > REDO_CHEAPER_S):
    store.save(state)  # else a resume redoes them
  if stop:
    raise preemption.Preempted("after sampling")
  return state


def _next_set(run: Run, state: RunState) -> ImageSet:
  """Phase select: the next training set from the pools, the current set and the real set
  (config.loop.paradigm), the pool embedded and selected from as config.loop says."""
  lc, g = run.config.loop, state.generation
  return next_training_set(lc.paradigm, current=state.current, real=run.real,
                           pools=state.pools, n=len(run.real), select=run.select,
                           vanilla=lc.selection == "none", fresh_fraction=lc.fresh_fraction,
                           rng=np.random.default_rng([run.config.seed, g]))


def _measured(run: Run, state: RunState, nxt: ImageSet, select_s: float) -> dict:
  """Generation state.generation + 1's metric row (loop/measure.py), with the generator's
  own measures and each phase's time."""
  t0 = time.perf_counter()
  row = measure.generation_metrics(state.generation + 1, state.current, state.pools[-1], nxt,
                                   run.real_stats, run.config, run.embed, run.mesh)
  row |= state.timing.get("model_metrics", {})  # the generator's own (model_entropy)
  return row | {"train_s": state.timing.get("train_s", 0.0),
                "generate_s": state.timing.get("generate_s", 0.0),
                "select_s": select_s, "metrics_s": time.perf_counter() - t0}


def _generations(run: Run, store: LoopStore, state: RunState, where: dict) -> list[dict]:
  """The generations left, each: fit and sample, select the next set, measure, save;
  `where` always holds the generation and phase under way."""
  lc, G = run.config.loop, run.config.loop.generations
  run_t0, first_g = time.perf_counter(), state.generation
  while state.generation < G:
    g = state.generation
    where.update(generation=g + 1, phase=state.phase)
    prefix = f"[gen {g + 1}/{G}] "
    if state.phase == "train":
      state = _sampled(run, store, state, prefix)
      where["phase"] = "select"
    t0 = time.perf_counter()
    nxt = _next_set(run, state)
    row = _measured(run, state, nxt, time.perf_counter() - t0)
    if lc.pictures:
      pictures = report.generation_pictures(state.current, state.pools[-1], nxt,
                                            lc.nn_panel)  # every process
      if jax.process_index() == 0:
        report.write_generation(os.path.join(run.workdir, f"gen_{g + 1:02d}"), pictures)
    measure.log_row(prefix, row)
    state = RunState(g + 1, "train", nxt, state.pools, state.rows + [row])
    store.save(state)
    store.sync_metrics(state.rows)
    per_gen = (time.perf_counter() - run_t0) / (g + 1 - first_g)
    left = int(per_gen * (G - g - 1))
    log.info("%sdone; %d of %d generations finished, run ETA %d:%02d:%02d (%.0f s per "
             "generation so far)", prefix, g + 1, G, left // 3600, left // 60 % 60, left % 60,
             per_gen)
    if preemption.reached() and g + 1 < G:
      where["phase"] = "done"
      raise preemption.Preempted("after its metrics")
  store.close()
  if jax.process_index() == 0:
    report.write_report(run.workdir, run.config, state.rows)
  log.info("finished %d generations in %.0f s: %s (metrics: %s)", G,
           time.perf_counter() - run_t0, os.path.join(run.workdir, "report.md"),
           os.path.join(run.workdir, "metrics.jsonl"))
  return state.rows
