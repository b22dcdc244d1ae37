"""The self-consuming loop: train -> generate -> embed -> select -> next training set.

The generative model is whatever `config.model.kind` names (`collapse_jax.generators`): the
loop only asks it to fit a set and to sample from what it fitted.

State at every phase boundary (generation, phase, current training set, all pools, metrics
so far) is an orbax checkpoint in workdir/loop_state; models checkpoint inside
workdir/gen_XX/model. Re-running the same command after a kill continues where it stopped
and gives the same results; random numbers derive from (seed, generation) only.

The rows of every set (real, pools, training sets: uint8 images, or float32 vectors for
vector data) live on the mesh as global arrays split by rows, from sampling through
embedding, selection and training: a candidate pool never gathers onto a host, and each
process checkpoints its own rows.
"""

import functools
import logging
import os
import time
from typing import NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from collapse_jax import checkpoint, config_lib, distributed, platform, preemption
from collapse_jax.errors import ConfigError
from collapse_jax.generators import make_generator
from collapse_jax.images import to_uint8
from collapse_jax.kernels.selection import greedy_select, threshold_decay_select
from collapse_jax.loop import report
from collapse_jax.loop.embed import SPACES, Embedder
from collapse_jax.loop.paradigms import ImageSet, next_training_set
from collapse_jax.metrics import collapse, probe
from collapse_jax.metrics.precision_recall import precision_recall
from collapse_jax.metrics.writer import sync_rows
from collapse_jax.sharding import make_mesh, put_rows, rows_sharding, take_rows, to_host

log = logging.getLogger(__name__)


def make_select_fn(lc, mesh, embed):
  """select(candidates, n, rng) -> indices, by config.loop.selection (within each class);
  `embed(images)` gives the features whose distances the selection spreads. The candidates
  are embedded once; per-class selections take their rows of those features."""

  def select_flat(x, size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if lc.selection == "none":
      return np.arange(n)
    if lc.selection == "random":
      return rng.choice(size, n, replace=False)
    if lc.selection == "greedy":
      return to_host(greedy_select(x, n, start=int(rng.integers(size)), mesh=mesh))
    key = jax.random.key(int(rng.integers(2**31)))
    return to_host(threshold_decay_select(
        x, n, lc.tau0, lc.decay, key=key, decay_every_pass=lc.decay_every_pass, mesh=mesh))

  def select(cands: ImageSet, n: int, rng: np.random.Generator) -> np.ndarray:
    x = embed(cands.images) if lc.selection in ("greedy", "threshold") else None
    if cands.labels is None or not lc.select_per_class:
      return select_flat(x, len(cands), n, rng)
    classes = np.unique(cands.labels)
    out = []
    for i, c in enumerate(classes):
      members = np.flatnonzero(cands.labels == c)
      want = min(n // len(classes) + (i < n % len(classes)), len(members))
      rows = None if x is None else take_rows(x, members)
      out.append(members[select_flat(rows, len(members), want, rng)])
    return np.concatenate(out)

  return select


def _pack(s: ImageSet) -> dict:
  d = {"images": s.images, "sources": s.sources}
  if s.labels is not None:
    d["labels"] = s.labels
  return d


def _unpack(d: dict) -> ImageSet:
  labels = np.asarray(d["labels"]) if "labels" in d else None
  return ImageSet(d["images"], labels, np.asarray(d["sources"]))


def _save(manager, step: int, current: ImageSet, pools: list[ImageSet], meta: dict) -> None:
  """Every process writes its own rows of the sets (orbax, multi-host)."""
  arrays = {"current": _pack(current), "pools": [_pack(p) for p in pools]}
  manager.save(step, args=ocp.args.Composite(
      arrays=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)))
  manager.wait_until_finished()


def _restore(manager, mesh):
  """The newest saved sets, images restored straight onto the mesh split by rows; the
  shapes come from the checkpoint's own metadata."""

  def target(path, saved):
    if path[-1].key == "images":
      return jax.ShapeDtypeStruct(saved.shape, saved.dtype,
                                  sharding=rows_sharding(mesh, saved.shape[0]))
    return np.zeros(saved.shape, saved.dtype)  # labels and sources: host arrays

  def restore(step):
    saved = manager.item_metadata(step)["arrays"].tree
    r = manager.restore(step, args=ocp.args.Composite(
        arrays=ocp.args.StandardRestore(jax.tree_util.tree_map_with_path(target, saved)),
        meta=ocp.args.JsonRestore()))
    jax.block_until_ready(r["arrays"])  # a torn file fails here, and an older step is used
    return r

  found = checkpoint.restore_intact(manager, restore)
  if found is None:
    return None
  arrays, meta = found[1]["arrays"], found[1]["meta"]
  return _unpack(arrays["current"]), [_unpack(p) for p in arrays["pools"]], meta


def _sync_rows(path_dir: str, rows: list[dict]) -> None:
  """metrics.jsonl and metrics.csv are derived from the loop state (the source of truth):
  rewritten atomically, with a warning, whenever they disagree with its finished rows."""
  repaired = sync_rows(path_dir, "metrics", [(r["generation"], r) for r in rows])
  if repaired:
    log.warning("repaired: %s", repaired)


def _space_metrics(prefix, fd_key, f_train, f_pool, f_next, real_stats, mesh, pixel_mse,
                   lc) -> dict:
  mu_p, s_p = collapse.gaussian_stats(f_pool)
  row = {
      f"{prefix}train_entropy": collapse.entropy(f_train, mesh),
      f"{prefix}pool_entropy": collapse.entropy(f_pool, mesh),
      f"{prefix}selected_entropy": collapse.entropy(f_next, mesh),
      fd_key: collapse.frechet_distance(mu_p, s_p, real_stats.mean, real_stats.cov),
  }
  scores = collapse.novelty(f_pool, f_train, pixel_mse=pixel_mse,
                            max_samples=lc.gen_score_samples,
                            copy_threshold=real_stats.copy_threshold, mesh=mesh)
  row |= {f"{prefix}{k}": v for k, v in scores.items()}
  row[f"{prefix}heldout_score"] = real_stats.heldout_score
  row[f"{prefix}copy_threshold"] = real_stats.copy_threshold
  row[f"{fd_key}_heldout"] = real_stats.heldout_fd
  return row


def generation_metrics(gen, current, pool, nxt, real_stats, config, embed, mesh) -> dict:
  """The paper's measures for generation `gen` (model trained on `current`, sampled `pool`):
  entropy / generalization score / FD in pixels, and in DINOv2 space, FID and precision /
  recall wherever the encoder weights are given. `real_stats` holds the real set's cached
  per-space statistics."""
  lc = config.loop
  row = {"generation": gen, "train_size": len(current)}
  f_pool = embed("pixels", pool.images)  # features stay on the devices, split like the images
  row |= _space_metrics("", "fd_real", embed("pixels", current.images), f_pool,
                        embed("pixels", nxt.images), real_stats["pixels"], mesh, True, lc)
  row["pixel_variance"] = collapse.pixel_variance(f_pool)
  row["pixel_dim"] = int(f_pool.shape[1])  # d of the KL entropy, to read its changes
  if "probe" in real_stats:  # sample quality: clean samples get the real images' confidence
    judge, row["real_probe_conf"] = real_stats["probe"]
    row["probe_conf"] = probe.confidence(judge, to_host(f_pool[:lc.gen_score_samples]))
  if embed.has("dinov2"):
    row |= _space_metrics("dino_", "fd_dino", embed("dinov2", current.images),
                          embed("dinov2", pool.images), embed("dinov2", nxt.images),
                          real_stats["dinov2"], mesh, False, lc)
  if embed.has("inception"):
    f_pool = embed("inception", pool.images)
    real_inc = real_stats["inception"]
    row["fid"] = collapse.frechet_distance(*collapse.gaussian_stats(f_pool), real_inc.mean,
                                           real_inc.cov)
    m = config.eval.pr_samples
    row["precision"], row["recall"] = precision_recall(real_inc.features[:m],
                                                       f_pool[:m], config.eval.pr_k)
  total = len(current)
  for name, count in current.source_counts().items():
    row[f"frac_{name}"] = count / total
  return row


class RealStats(NamedTuple):
  """The real training set's statistics in one feature space (`real_statistics`)."""

  mean: np.ndarray
  cov: np.ndarray
  features: jax.Array
  heldout_score: float
  copy_threshold: float
  heldout_fd: float


def real_statistics(real: ImageSet, heldout: ImageSet, embed, lc) -> dict:
  """Per space, a RealStats: the real training set's mean, covariance and features (cached
  on disk); the held-out real images' generalization score against it (NaN without any),
  the score new real data gets, which the samples' score is read against; the copy distance
  `copy_frac` counts below, fixed from the same held-out images; and their FD to the real
  set, the reference for the samples' (`fd_real_heldout`, `fd_dino_heldout`). With held-out
  labels, "probe" holds (a pixel-space classifier fit on them, its confidence on the real
  training set): the judge of `probe_conf`."""
  stats = {}
  labelled = heldout.labels is not None and len(np.unique(heldout.labels)) > 1
  for space in SPACES:
    if embed.has(space):
      feats = embed.cached(space, real.images)
      mu, sigma = collapse.gaussian_stats(feats)
      held = thr = held_fd = float("nan")
      if len(heldout) and space != "inception":  # FID space has no generalization score
        f_held = embed(space, heldout.images)
        held, thr = collapse.heldout_reference(f_held, feats, pixel_mse=space == "pixels",
                                               max_samples=lc.gen_score_samples,
                                               mesh=embed.mesh)
        # The FD new real images get, counted as many as a pool (FD's bias depends on it).
        if len(heldout) > 1:
          held_fd = collapse.frechet_distance(
              *collapse.gaussian_stats(f_held[:len(real) * lc.pool_factor]), mu, sigma)
      stats[space] = RealStats(mu, sigma, feats, held, thr, held_fd)
      if space == "pixels" and labelled:  # the held-out pixels just embedded fit the probe
        judge = probe.fit_probe(to_host(f_held), heldout.labels)
        stats["probe"] = (judge, probe.confidence(judge, to_host(feats)))
  return stats


def split_real(ds, lc, seed: int, conditional: bool, mesh) -> tuple[ImageSet, ImageSet]:
  """The loop's real training set (N rows) and a disjoint held-out set of real rows (up to
  config.loop.n_heldout), both from one seeded permutation. Images are stored as uint8
  (as the paper saves its samples as image files), vectors as float32."""
  total = len(ds.images)
  n = lc.n_train or total - min(lc.n_heldout, total // 2)
  if n > total:
    raise ConfigError(f"config.loop.n_train={n} exceeds the {total} real images.")
  order = np.random.default_rng(seed).permutation(total)
  parts = order[:n], order[n:n + lc.n_heldout]

  def image_set(idx, keep_labels):
    labels = ds.labels[idx] if keep_labels and ds.labels is not None else None
    rows = to_uint8(ds.images[idx]) if ds.is_image else ds.images[idx].astype(np.float32)
    return ImageSet(put_rows(rows, mesh), labels, np.zeros(len(idx), np.int32))

  if 0 < len(parts[1]) < lc.n_heldout:
    log.warning("config.loop.n_heldout=%d, but only %d real images are left after "
                "n_train=%d of %d: heldout_score and copy_frac's threshold use those %d; lower "
                "config.loop.n_train to keep more.", lc.n_heldout, len(parts[1]), n, total,
                len(parts[1]))
  log.info("real data: %d training images, %d held out", n, len(parts[1]))
  if not len(parts[1]):
    if lc.n_heldout:
      log.warning("no real images left for config.loop.n_heldout: heldout_score is NaN; "
                  "lower config.loop.n_train to keep some.")
    empty = np.zeros((0, *ds.images.shape[1:]), np.uint8 if ds.is_image else np.float32)
    return image_set(parts[0], conditional), ImageSet(empty, None, np.zeros(0, np.int32))
  # The held-out labels never reach a model: they fit the quality probe (real_statistics).
  return image_set(parts[0], conditional), image_set(parts[1], True)


def fit_and_sample(generator, current: ImageSet, key, pool_size: int, num_classes: int, *,
                   generation: int, workdir: str, prefix: str) -> tuple[ImageSet, dict]:
  """A generation's first phase: fit the generator to the training set, then sample the
  candidate pool (labels cycling over the classes for a conditional model). Returns the
  pool and the phase's timings and the generator's own metrics, for the row."""
  train_key, sample_key = jax.random.split(key)
  t0 = time.perf_counter()
  fitted = generator.fit(current, train_key, generation=generation, workdir=workdir,
                         log_prefix=prefix + "train ")
  t1 = time.perf_counter()
  labels = (np.arange(pool_size, dtype=np.int32) % num_classes if generator.conditional
            else None)
  log.info("%sgenerating %d samples", prefix, pool_size)
  pool = ImageSet(generator.sample(fitted, sample_key, pool_size, labels), labels,
                  np.full(pool_size, generation, np.int32))
  t2 = time.perf_counter()
  log.info("%s%d samples in %.1fs (%.0f samples/s)", prefix, pool_size, t2 - t1,
           pool_size / (t2 - t1))
  return pool, {"train_s": t1 - t0, "generate_s": t2 - t1, "model_metrics": fitted.metrics}


def _log_row(prefix: str, row: dict) -> None:
  log.info("%sentropy train %.4g pool %.4g selected %.4g | gen score %.4g (held-out %.4g) | "
           "copy_frac %.3g | FD %.4g", prefix, row["train_entropy"], row["pool_entropy"],
           row["selected_entropy"], row["gen_score"], row["heldout_score"], row["copy_frac"],
           row["fd_real"])
  extra = {k: row[k] for k in ("model_entropy", "dino_train_entropy", "dino_gen_score",
                               "fd_dino", "fid", "precision", "recall") if k in row}
  if extra:
    log.info("%s%s", prefix, " | ".join(f"{k} {v:.3g}" for k, v in extra.items()))


# A generation's fit and sampling that took less than this are redone after a kill rather
# than checkpointed (closed-form generators: a save costs more than they do).
REDO_CHEAPER_S = 2.0


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
  real, heldout = split_real(ds, lc, config.seed, generator.conditional, mesh)
  n = len(real)
  embed = Embedder.from_config(config, mesh, os.path.join(workdir, "features"))
  real_stats = real_statistics(real, heldout, embed, lc)
  pool_size = n * lc.pool_factor
  for name, size in (("n_train", n), ("n_train * pool_factor", pool_size)):
    if mesh.size > 1 and rows_sharding(mesh, size).is_fully_replicated:
      log.warning("config.loop.%s = %d divides over no axis of the mesh %s: those sets are "
                  "replicated on every device. Use a multiple of the device count.", name,
                  size, dict(mesh.shape))
  select = make_select_fn(lc, mesh, functools.partial(embed, config.features))
  G = lc.generations

  manager = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "loop_state")),
      options=ocp.CheckpointManagerOptions(max_to_keep=2),
      # Named handlers let a fresh process read the saved shapes (item_metadata).
      item_handlers={"arrays": ocp.StandardCheckpointHandler(),
                     "meta": ocp.JsonCheckpointHandler()})
  restored = _restore(manager, mesh)
  if restored is None:
    current, pools, meta = real, [], {"generation": 0, "phase": "train", "rows": []}
    _save(manager, 0, current, pools, meta)
  else:
    current, pools, meta = restored
    _sync_rows(workdir, meta["rows"])  # a torn or stale metrics file is repaired first
  if meta["generation"] >= G:
    log.info("%s already finished all %d generations; nothing to do.", workdir, G)
    _sync_rows(workdir, meta["rows"])
    return meta["rows"]
  if restored is not None:
    log.info("resuming at generation %d/%d, phase %s", meta["generation"] + 1, G, meta["phase"])

  where = {}
  try:
    return _generations(manager, meta, current, pools, real, real_stats, generator, select,
                        embed, config, workdir, mesh, ds, n, pool_size, where)
  except (KeyboardInterrupt, preemption.Preempted) as e:  # the one-line message says where
    detail = f", {e.args[0]}" if isinstance(e, preemption.Preempted) and e.args else ""
    raise type(e)(f"at generation {where.get('generation', '?')}/{G}, phase "
                  f"{where.get('phase', '?')}{detail}") from e


def _generations(manager, meta, current, pools, real, real_stats, generator, select, embed,
                 config, workdir, mesh, ds, n, pool_size, where):
  """The generations left, each train -> sample -> select -> metrics, saved at each phase;
  `where` always holds the generation and phase under way."""
  lc, G = config.loop, config.loop.generations
  run_t0, first_g = time.perf_counter(), meta["generation"]
  while meta["generation"] < G:
    g = meta["generation"]
    where.update(generation=g + 1, phase=meta["phase"])
    gen_dir = os.path.join(workdir, f"gen_{g + 1:02d}")
    key = jax.random.fold_in(jax.random.key(config.seed), g)
    prefix = f"[gen {g + 1}/{G}] "
    if meta["phase"] == "train":
      pool, timing = fit_and_sample(generator, current, key, pool_size, ds.num_classes,
                                    generation=g + 1, workdir=workdir, prefix=prefix)
      meta |= {"phase": "select", **timing}
      where["phase"] = "select"
      # Only accumulate draws from old pools; the other paradigms keep just the newest.
      pools = (pools if lc.paradigm == "accumulate" else []) + [pool]
      # Process 0's clock decides (a save is a collective); a preemption always saves.
      stop = preemption.reached()
      if stop or distributed.agree(timing["train_s"] + timing["generate_s"] > REDO_CHEAPER_S):
        _save(manager, 2 * g + 1, current, pools, meta)  # else a resume redoes them
      if stop:
        raise preemption.Preempted("after sampling")
    t0 = time.perf_counter()
    pool = pools[-1]
    rng = np.random.default_rng([config.seed, g])
    nxt = next_training_set(lc.paradigm, current=current, real=real, pools=pools, n=n,
                            select=select, vanilla=lc.selection == "none",
                            fresh_fraction=lc.fresh_fraction, rng=rng)
    t1 = time.perf_counter()
    row = generation_metrics(g + 1, current, pool, nxt, real_stats, config, embed, mesh)
    row |= meta.get("model_metrics", {})  # the generator's own measures (model_entropy)
    row |= {"train_s": meta.get("train_s", 0.0), "generate_s": meta.get("generate_s", 0.0),
            "select_s": t1 - t0, "metrics_s": time.perf_counter() - t1}
    if lc.pictures:
      pictures = report.generation_pictures(current, pool, nxt, lc.nn_panel)  # every process
      if jax.process_index() == 0:
        report.write_generation(gen_dir, pictures)
    _log_row(prefix, row)
    meta = {"generation": g + 1, "phase": "train", "rows": meta["rows"] + [row]}
    _save(manager, 2 * g + 2, nxt, pools, meta)
    _sync_rows(workdir, meta["rows"])
    current = nxt
    per_gen = (time.perf_counter() - run_t0) / (g + 1 - first_g)
    left = int(per_gen * (G - g - 1))
    log.info("%sdone; %d of %d generations finished, run ETA %d:%02d:%02d (%.0f s per "
             "generation so far)", prefix, g + 1, G, left // 3600, left // 60 % 60, left % 60,
             per_gen)
    if preemption.reached() and g + 1 < G:
      where["phase"] = "done"
      raise preemption.Preempted("after its metrics")
  manager.close()
  if jax.process_index() == 0:
    report.write_report(workdir, config, meta["rows"])
  log.info("finished %d generations in %.0f s: %s (metrics: %s)", G,
           time.perf_counter() - run_t0, os.path.join(workdir, "report.md"),
           os.path.join(workdir, "metrics.jsonl"))
  return meta["rows"]
