"""A generation's measures (the paper's, and the loop's own): entropy, generalization score,
copies and FD in every feature space the run has, the quality probe, FID and precision /
recall; each read against the real set's statistics (loop/real.py)."""

import logging

from collapse_jax.metrics import collapse, probe
from collapse_jax.metrics.precision_recall import precision_recall
from collapse_jax.sharding import to_host

log = logging.getLogger(__name__)


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


def log_row(prefix: str, row: dict) -> None:
  log.info("%sentropy train %.4g pool %.4g selected %.4g | gen score %.4g (held-out %.4g) | "
           "copy_frac %.3g | FD %.4g", prefix, row["train_entropy"], row["pool_entropy"],
           row["selected_entropy"], row["gen_score"], row["heldout_score"], row["copy_frac"],
           row["fd_real"])
  extra = {k: row[k] for k in ("model_entropy", "dino_train_entropy", "dino_gen_score",
                               "fd_dino", "fid", "precision", "recall") if k in row}
  if extra:
    log.info("%s%s", prefix, " | ".join(f"{k} {v:.3g}" for k, v in extra.items()))
