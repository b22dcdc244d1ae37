import numpy as np
from scipy.spatial.distance import cdist

from collapse_jax.metrics.precision_recall import inside_any_ball, precision_recall


def _brute(real, fake, k):
  def radii(x):
    return np.sort(cdist(x, x), axis=1)[:, k]  # column 0 is the point itself

  prec = np.mean((cdist(fake, real) <= radii(real)[None]).any(1))
  rec = np.mean((cdist(real, fake) <= radii(fake)[None]).any(1))
  return prec, rec


def test_precision_recall_matches_brute_force():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(301, 24)).astype(np.float32)
  fake = (0.6 * rng.normal(size=(257, 24)) + 0.4).astype(np.float32)
  got = precision_recall(real, fake, k=3)
  want = _brute(real.astype(np.float64), fake.astype(np.float64), 3)
  np.testing.assert_allclose(got, want, atol=1.5 / 257)
  # Identical sets cover each other completely.
  np.testing.assert_allclose(precision_recall(real, real.copy()), (1.0, 1.0))


def test_inside_any_ball_blocks_and_padding():
  rng = np.random.default_rng(1)
  q, c = rng.normal(size=(37, 5)), rng.normal(size=(53, 5))
  radii = rng.uniform(0.2, 1.2, 53)
  d = cdist(q, c)
  want = (d <= radii[None]).any(1)
  got = np.asarray(inside_any_ball(q.astype(np.float32), c.astype(np.float32),
                                   radii.astype(np.float32), block_size=16))
  clear = np.abs(d - radii[None]).min(1) > 1e-4  # away from float32 ties at a ball's edge
  assert 0 < want.sum() < len(q) and clear.mean() > 0.9
  np.testing.assert_array_equal(got[clear], want[clear])
