"""A generation's measures (the paper's, and the loop's own): entropy, generalization score,
copies and FD in every feature space the run has, the quality probe, FID and precision /
recall; each read against the real set's statistics (loop/real.py)."""

import logging

import jax
import jax.numpy as jnp

from collapse_jax.diffusion.schedule import schedule_from_config
from collapse_jax.metrics import collapse, probe, sinkhorn
from collapse_jax.metrics.collapse_time import collapse_time
from collapse_jax.metrics.precision_recall import precision_recall
from collapse_jax.sharding import to_host

log = logging.getLogger(__name__)


def collapse_metrics(prefix, f_train, real_stats, gen: int, config, mesh) -> dict:
  """The collapse time of generation `gen`'s training set (metrics/collapse_time.py) in a
  feature space, in the diffusion's own units (uint8 pixels as [-1, 1]) and schedule.
  Queries from the set's distribution: generation 1 trains on real rows, so held-out real
  rows; later sets come from a model whose other draws are not kept (vanilla's pool is the
  set), so each of the set's first rows is held out of its own sum (leave-one-out: exact
  for i.i.d. rows; both agree to ~1-2% on Gaussian data, tests/test_collapse_time.py)."""
  alphas = schedule_from_config(config).alphas_cumprod
  scale, shift = (1 / 127.5, -1.0) if f_train.dtype == jnp.uint8 else (1.0, 0.0)
  m = config.loop.gen_score_samples
  held = real_stats.heldout
  loo = not (gen == 1 and held is not None and len(held))
  if loo and len(f_train) < 2:
    return {f"{prefix}collapse_t": float("nan"), f"{prefix}collapse_step": -1}
  key = jax.random.fold_in(jax.random.key(config.seed), gen)
  ct = collapse_time(f_train, f_train[:m] if loo else held, alphas, key, scale=scale,
                     shift=shift, exclude_self=loo, mesh=mesh)
  if ct.crossings > 1:
    log.warning("%scollapse time: f^e changes sign %d times over the schedule; the largest "
                "root is reported", prefix or "pixels ", ct.crossings)
  return {f"{prefix}collapse_t": ct.t, f"{prefix}collapse_step": ct.step}


def _space_metrics(prefix, fd_key, f_train, f_pool, f_next, real_stats, mesh, pixel_mse,
                   lc) -> dict:
  # FD and Sinkhorn on the pool's first N rows (N: the real training set's size, whatever the
  # paradigm makes the training set), as the held-out reference: their bias falls with the
  # sample count, and a 2N selection pool against vanilla's N would otherwise look closer to
  # the real set (the same generation-1 model: 25.8k on N digits, 20.6k on 2N). Entropy keeps
  # the whole pool.
  scored = f_pool[:real_stats.features.shape[0]]
  mu_p, s_p = collapse.gaussian_stats(scored)
  row = {
      f"{prefix}train_entropy": collapse.entropy(f_train, mesh),
      f"{prefix}pool_entropy": collapse.entropy(f_pool, mesh),
      f"{prefix}selected_entropy": collapse.entropy(f_next, mesh),
      # FD as everywhere else: to the dataset's full real split; and to the N-image subset
      fd_key: collapse.frechet_distance(mu_p, s_p, real_stats.mean, real_stats.cov),
      f"{fd_key}_subset": collapse.frechet_distance(mu_p, s_p, real_stats.subset_mean,
                                                    real_stats.subset_cov),
  }
  scores = collapse.novelty(f_pool, f_train, pixel_mse=pixel_mse,
                            max_samples=lc.gen_score_samples,
                            copy_threshold=real_stats.copy_threshold, mesh=mesh)
  row |= {f"{prefix}{k}": v for k, v in scores.items()}
  if real_stats.heldout is not None:  # an OT distance to new real data, no Gaussian assumed
    row[f"{prefix}sinkhorn"] = sinkhorn.sinkhorn_divergence(
        scored[:lc.gen_score_samples], real_stats.heldout, real_stats.sinkhorn_eps)
    row[f"{prefix}sinkhorn_heldout"] = real_stats.heldout_sinkhorn
  row[f"{prefix}heldout_score"] = real_stats.heldout_score
  row[f"{prefix}copy_threshold"] = real_stats.copy_threshold
  row[f"{fd_key}_heldout"] = real_stats.heldout_fd
  row[f"{fd_key}_subset_heldout"] = real_stats.heldout_subset_fd
  return row


def generation_metrics(gen, current, pool, nxt, real_stats, config, embed, mesh) -> dict:
  """The paper's measures for generation `gen` (model trained on `current`, sampled `pool`):
  entropy / generalization score / FD in pixels, in the learned space where the run has one
  (learned_*), in DINOv2 space, FID and precision / recall wherever the encoder weights are
  given. `real_stats` holds the real set's cached
  per-space statistics."""
  lc = config.loop
  row = {"generation": gen, "train_size": len(current)}
  f_pool = embed("pixels", pool.images)  # features stay on the devices, split like the images
  f_train = embed("pixels", current.images)
  row |= _space_metrics("", "fd_real", f_train, f_pool, embed("pixels", nxt.images),
                        real_stats["pixels"], mesh, True, lc)
  row |= collapse_metrics("", f_train, real_stats["pixels"], gen, config, mesh)
  row["pixel_variance"] = collapse.pixel_variance(f_pool)
  row["pixel_dim"] = int(f_pool.shape[1])  # d of the KL entropy, to read its changes
  if "probe" in real_stats:  # sample quality: clean samples get the real images' confidence
    judge, row["real_probe_conf"] = real_stats["probe"]
    row["probe_conf"] = probe.confidence(judge, to_host(f_pool[:lc.gen_score_samples]))
  for space, prefix, fd_key in (("dinov2", "dino_", "fd_dino"),
                                ("learned", "learned_", "fd_learned")):
    if embed.has(space):
      f_train = embed(space, current.images)
      row |= _space_metrics(prefix, fd_key, f_train, embed(space, pool.images),
                            embed(space, nxt.images), real_stats[space], mesh, False, lc)
      row |= collapse_metrics(prefix, f_train, real_stats[space], gen, config, mesh)
  if embed.has("inception"):
    f_pool = embed("inception", pool.images)[:len(current)]  # N rows, as the FD above
    real_inc = real_stats["inception"]
    pool_stats = collapse.gaussian_stats(f_pool)
    row["fid"] = collapse.frechet_distance(*pool_stats, real_inc.mean, real_inc.cov)
    row["fid_subset"] = collapse.frechet_distance(*pool_stats, real_inc.subset_mean,
                                                  real_inc.subset_cov)
    m = config.eval.pr_samples
    row["precision"], row["recall"] = precision_recall(real_inc.features[:m],
                                                       f_pool[:m], config.eval.pr_k)
  total = len(current)
  for name, count in current.source_counts().items():
    row[f"frac_{name}"] = count / total
  return row


def log_row(prefix: str, row: dict) -> None:
  log.info("%sentropy train %.4g pool %.4g selected %.4g | collapse t_C %.3g (%d steps) | "
           "gen score %.4g (held-out %.4g) | copy_frac %.3g | FD %.4g", prefix,
           row["train_entropy"], row["pool_entropy"], row["selected_entropy"],
           row["collapse_t"], row["collapse_step"], row["gen_score"], row["heldout_score"],
           row["copy_frac"], row["fd_real"])
  extra = {k: row[k] for k in ("model_entropy", "learned_train_entropy", "learned_gen_score",
                               "fd_learned", "probe_conf", "dino_train_entropy",
                               "dino_collapse_t", "dino_gen_score",
                               "fd_dino", "fid", "precision", "recall") if k in row}
  if extra:
    log.info("%s%s", prefix, " | ".join(f"{k} {v:.3g}" for k, v in extra.items()))
