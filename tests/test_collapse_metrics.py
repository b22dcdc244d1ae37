"""Per-generation measures against closed forms and brute force."""

import jax
import numpy as np
import pytest
from scipy import linalg

from collapse_jax import sharding
from collapse_jax.loop import embed
from collapse_jax.metrics import collapse


def test_trace_sqrt_product_matches_scipy_sqrtm(rng):
  for d, rank in ((64, 64), (64, 20)):
    a, b = rng.normal(size=(d, rank)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T / rank, b @ b.T / d
    want = np.trace(np.real(linalg.sqrtm(s1 @ s2)))
    np.testing.assert_allclose(collapse.trace_sqrt_product(s1, s2), want, rtol=1e-7)


def test_frechet_distance_closed_form_for_diagonal_covariances(rng):
  d = 6
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  s1, s2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
  want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
  got = collapse.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
  np.testing.assert_allclose(got, want, rtol=1e-9)
  a = rng.normal(size=(d, d))
  cov = a @ a.T + np.eye(d)
  assert abs(collapse.frechet_distance(mu1, cov, mu1, cov)) < 1e-8


def test_frechet_distance_with_singular_covariance_is_finite():
  x = np.random.default_rng(0).normal(size=(200, 5))
  x[:, 0] = 0.0  # a constant feature: singular covariance, like black border pixels
  mu, s = collapse.gaussian_stats(x)
  assert np.isfinite(collapse.frechet_distance(mu, s, mu + 1, s))


def test_generalization_score_is_nearest_training_distance(rng):
  train = rng.normal(size=(300, 64)).astype(np.float32) * 40
  gen = rng.normal(size=(50, 64)).astype(np.float32) * 40
  gen[:10] = train[:10]  # exact copies score 0
  dist = np.sqrt(((gen[:, None].astype(np.float64) - train[None]) ** 2).sum(-1)).min(1)
  np.testing.assert_allclose(
      collapse.generalization_score(gen, train, pixel_mse=True), np.mean(dist**2 / 64),
      rtol=1e-4)
  np.testing.assert_allclose(
      collapse.generalization_score(gen, train, pixel_mse=False, max_samples=20),
      np.mean(dist[:20]), rtol=1e-5)


def test_pixel_features_and_variance():
  images = np.array([[[[0]], [[255]]], [[[127]], [[255]]]], np.uint8)
  f = embed.pixels(images)
  np.testing.assert_allclose(f, [[0.0, 255.0], [127.0, 255.0]])
  np.testing.assert_allclose(collapse.pixel_variance(f), np.var(f[:, 0], ddof=1))


def test_gaussian_stats_on_a_sharded_set_match_numpy_float64(rng):
  x = (rng.normal(size=(96, 48)) * 40 + 120).astype(np.float32)  # pixel-like scale
  mesh = sharding.make_mesh({"data": 4, "fsdp": 2})
  for n in (96, 90):  # 96 rows split over all 8 devices; 90 over the 2 'fsdp' ones
    mu, cov = collapse.gaussian_stats(sharding.put_rows(x[:n], mesh))
    want = x[:n].astype(np.float64)
    np.testing.assert_allclose(mu, want.mean(0), rtol=1e-6)
    np.testing.assert_allclose(cov, np.cov(want, rowvar=False), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(collapse.pixel_variance(sharding.put_rows(x[:n], mesh)),
                               np.trace(np.cov(want, rowvar=False)), rtol=1e-5)


def test_device_fingerprint_ignores_sharding_and_sees_one_changed_pixel(rng):
  images = rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
  by_rows = sharding.put_rows(images, sharding.make_mesh({"data": 4, "fsdp": 2}))
  one_device = sharding.put_rows(images, sharding.make_mesh({"data": 1}, jax.devices()[:1]))
  assert embed.fingerprint(by_rows) == embed.fingerprint(one_device)
  changed = images.copy()
  changed[37, 3, 5, 0] ^= 1
  assert embed.fingerprint(sharding.put_rows(changed, by_rows.sharding.mesh)) != \
      embed.fingerprint(by_rows)


def _novelty_numpy(gen, train, pixel_mse, max_samples, copy_threshold):
  """Brute force in float64: every pairwise distance, sorted."""
  gen = gen[:max_samples].astype(np.float64)
  d = np.sqrt(((gen[:, None] - train[None].astype(np.float64)) ** 2).sum(-1))
  order = np.sort(d, axis=1)
  score = np.mean(order[:, 0] ** 2 / gen.shape[1]) if pixel_mse else np.mean(order[:, 0])
  n = len(train)
  return {"gen_score": score, "memorized_frac": np.mean(order[:, 0] < order[:, 1] / 3),
          "unique_copied": len(np.unique(d[:n].argmin(1))) / len(d[:n]),
          "copy_frac": np.mean(order[:, 0] < copy_threshold)}


def test_memorization_measures_match_brute_force_sharded_and_not(rng):
  train = rng.uniform(0, 255, (64, 48)).astype(np.float32)
  gen = rng.uniform(0, 255, (96, 48)).astype(np.float32)
  copies = rng.choice(64, 40)  # near-copies of 40 draws (with repeats): memorized
  gen[:40] = train[copies] + rng.normal(0, 2, (40, 48)).astype(np.float32)
  gen[40:50] = 0.55 * train[:10] + 0.45 * train[10:20]  # between two: not 3x closer
  heldout = rng.uniform(0, 255, (80, 48)).astype(np.float32)
  d_held = np.sqrt(((heldout[:, None].astype(np.float64) - train[None]) ** 2).sum(-1)).min(1)
  mesh = sharding.make_mesh({"data": 4, "fsdp": 2})
  for pixel_mse, m in ((True, 1000), (False, 60), (True, 32)):
    held_score = np.mean(d_held[:m] ** 2 / 48) if pixel_mse else np.mean(d_held[:m])
    thr = np.median(d_held[:m]) / 3
    want = _novelty_numpy(gen, train, pixel_mse, m, thr)
    for g, t, h in ((gen, train, heldout), tuple(sharding.put_rows(a, mesh)
                                                 for a in (gen, train, heldout))):
      got_held, got_thr = collapse.heldout_reference(h, t, pixel_mse, max_samples=m)
      np.testing.assert_allclose([got_held, got_thr], [held_score, thr], rtol=1e-4)
      got = collapse.novelty(g, t, pixel_mse=pixel_mse, max_samples=m, copy_threshold=got_thr)
      assert got.keys() == want.keys()
      np.testing.assert_allclose(got["gen_score"], want["gen_score"], rtol=1e-4)
      for key in ("memorized_frac", "unique_copied", "copy_frac"):
        assert got[key] == want[key], key
  assert _novelty_numpy(gen, train, True, 1000, 0)["memorized_frac"] == 40 / 96
  assert _novelty_numpy(gen, train, True, 40, 0)["unique_copied"] == len(np.unique(copies)) / 40
  # The 40 near-copies (noise ~2 per pixel, ~14 in all) and nothing else are copies at a
  # threshold of a third of the uniform points' spacing (~200 / 3).
  assert _novelty_numpy(gen, train, True, 1000, np.median(d_held) / 3)["copy_frac"] == 40 / 96
  assert np.isnan(collapse.novelty(gen, train, pixel_mse=True)["copy_frac"])  # no threshold


def test_unique_copied_counts_at_most_n_samples():
  """A 2N pool is scored on its first N samples, so selection runs compare to vanilla."""
  train = np.eye(4, dtype=np.float32) * 100
  gen = np.concatenate([train[[0, 0, 1, 1]], train[[2, 3, 2, 3]]])  # first N copy 2 images
  assert collapse.novelty(gen, train, pixel_mse=True)["unique_copied"] == 0.5
  assert collapse.novelty(gen, train, pixel_mse=True)["memorized_frac"] == 1.0


def test_unique_copied_reaches_one_at_any_training_set_size(rng):
  """At N = 4,096 with 50 samples scored: 1.0 when each copies a different training row,
  1/50 when all copy one; the old count over N could not pass 50 / 4,096."""
  train = rng.normal(0, 100, (4096, 16)).astype(np.float32)
  rows = rng.choice(4096, 50, replace=False)
  distinct = train[rows] + rng.normal(0, 0.1, (50, 16)).astype(np.float32)
  same = train[rows[:1]] + rng.normal(0, 0.1, (50, 16)).astype(np.float32)
  for gen, want in ((distinct, 1.0), (same, 1 / 50)):
    got = collapse.novelty(gen, train, pixel_mse=True, max_samples=1000)["unique_copied"]
    assert got == pytest.approx(want)
  half = np.concatenate([distinct[:25], same[:25]])  # the second 25 copy rows[0] again
  got = collapse.novelty(half, train, pixel_mse=True, max_samples=1000)["unique_copied"]
  assert got == pytest.approx(25 / 50)
