"""The real data of a run: its training set and held-out rows (one seeded split), and the
real set's per-space statistics every generation is measured against (`RealStats`)."""

import logging
from typing import NamedTuple

import jax
import numpy as np

from collapse_jax.data.sets import ImageSet
from collapse_jax.errors import ConfigError
from collapse_jax.images import to_uint8
from collapse_jax.loop.embed import SPACES
from collapse_jax.metrics import collapse, probe, sinkhorn
from collapse_jax.sharding import put_rows, to_host

log = logging.getLogger(__name__)


def split_indices(total: int, lc, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Row indices of the loop's real training set (N rows) and of a disjoint held-out set (up
  to config.loop.n_heldout), from one seeded permutation: the same on every process."""
  n = lc.n_train or total - min(lc.n_heldout, total // 2)
  if n > total:
    raise ConfigError(f"config.loop.n_train={n} exceeds the {total} real images.")
  order = np.random.default_rng(seed).permutation(total)
  return order[:n], order[n:n + lc.n_heldout]


def host_rows(ds, idx) -> np.ndarray:
  """Rows of a loaded dataset as the loop stores them: uint8 images, float32 vectors."""
  return to_uint8(ds.images[idx]) if ds.is_image else ds.images[idx].astype(np.float32)


def split_real(ds, parts, lc, conditional: bool, mesh) -> tuple[ImageSet, ImageSet]:
  """The loop's real training set and held-out set (`parts`, from `split_indices`) on the
  mesh. Images are stored as uint8 (as the paper saves its samples as image files), vectors
  as float32."""
  total, n = len(ds.images), len(parts[0])

  def image_set(idx, keep_labels):
    labels = ds.labels[idx] if keep_labels and ds.labels is not None else None
    return ImageSet(put_rows(host_rows(ds, idx), mesh), labels, np.zeros(len(idx), np.int32))

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


def full_split(ds, mesh) -> jax.Array:
  """The dataset's whole real split as loaded (uint8 images or float32 vectors) on the mesh,
  split by rows: the reference statistics of FD and FID."""
  return put_rows(host_rows(ds, slice(None)), mesh)


class RealStats(NamedTuple):
  """The real data's statistics in one feature space (`real_statistics`)."""

  mean: np.ndarray  # the dataset's full real split (what FID means): fd_real, fd_dino, fid
  cov: np.ndarray
  subset_mean: np.ndarray  # the loop's N-image real training set: fd_real_subset, ...
  subset_cov: np.ndarray
  features: jax.Array  # the N-image training set's
  heldout_score: float
  copy_threshold: float
  heldout_fd: float  # held-out real rows' FD to the full split (the samples' reference)
  heldout_subset_fd: float  # and to the N-image subset
  heldout: jax.Array | None  # up to gen_score_samples held-out rows (generation 1's t_C)
  sinkhorn_eps: float  # the Sinkhorn divergence's blur, from the real rows' scale
  heldout_sinkhorn: float  # held-out rows' divergence to the real set's: the reference


def real_statistics(real: ImageSet, heldout: ImageSet, embed, lc, full=None) -> dict:
  """Per space, a RealStats: the mean and covariance of the dataset's full real split
  (`full`, uint8 rows; cached on disk per dataset and space, the reference of FD / FID as
  everywhere else) and of the loop's N-image real training set; that set's features (cached
  on disk); the held-out real images' generalization score against it (NaN without any),
  the score new real data gets, which the samples' score is read against; the copy distance
  `copy_frac` counts below, fixed from the same held-out images; their FD to the full split
  and to the subset, the references for the samples' (`fd_real_heldout`,
  `fd_real_subset_heldout`, ...); and up to gen_score_samples held-out rows, the queries of
  generation 1's collapse time, the Sinkhorn divergence's blur and the held-out rows'
  divergence to the real rows. With held-out labels, "probe" holds (a pixel-space
  classifier fit on them, its confidence on the real training set): the judge of
  `probe_conf`. Without `full`, the full split is the training set."""
  stats = {}
  labelled = heldout.labels is not None and len(np.unique(heldout.labels)) > 1
  for space in SPACES:
    if embed.has(space):
      feats = embed.cached(space, real.images)
      mu_n, sigma_n = collapse.gaussian_stats(feats)
      mu, sigma = (mu_n, sigma_n) if full is None else embed.cached_stats(space, full)
      held = thr = held_fd = held_sub_fd = float("nan")
      held_rows, eps, held_sk = None, sinkhorn.epsilon_for(feats), float("nan")
      if len(heldout) and space != "inception":  # FID space has no generalization score
        f_held = embed(space, heldout.images)
        held_rows = f_held[:lc.gen_score_samples]
        held_sk = sinkhorn.sinkhorn_divergence(feats[:lc.gen_score_samples], held_rows, eps)
        held, thr = collapse.heldout_reference(f_held, feats, pixel_mse=space == "pixels",
                                               max_samples=lc.gen_score_samples,
                                               mesh=embed.mesh)
        # The FD new real images get, on as many rows as a pool is scored on (N: FD's bias
        # depends on the count; measure._space_metrics).
        if len(heldout) > 1:
          h_stats = collapse.gaussian_stats(f_held[:len(real)])
          held_fd = collapse.frechet_distance(*h_stats, mu, sigma)
          held_sub_fd = collapse.frechet_distance(*h_stats, mu_n, sigma_n)
      stats[space] = RealStats(mu, sigma, mu_n, sigma_n, feats, held, thr, held_fd,
                               held_sub_fd, held_rows, eps, held_sk)
      if space == "pixels" and labelled:  # the held-out pixels just embedded fit the probe
        judge = probe.fit_probe(to_host(f_held), heldout.labels)
        stats["probe"] = (judge, probe.confidence(judge, to_host(feats)))
  return stats
