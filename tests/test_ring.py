"""The ring kNN (kernels/ring.py): every device holds a share of the queries and of the
base, the base travels. Against brute force in float64, at three mesh shapes."""

import jax
import numpy as np
import pytest

from collapse_jax.kernels.ring import _ring_knn, ring_knn
from collapse_jax.metrics import collapse
from collapse_jax.sharding import make_mesh

SHAPES = [(8, 1), (4, 2), (2, 4)]


def brute(q, x, k, exclude_self=False):
  d2 = ((q.astype(np.float64)[:, None] - x.astype(np.float64)[None]) ** 2).sum(-1)
  if exclude_self:
    np.fill_diagonal(d2, np.inf)
  idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
  return np.sqrt(np.take_along_axis(d2, idx, 1)), idx


@pytest.mark.parametrize("shape", SHAPES)
def test_ring_equals_brute_force(devices, shape, rng):
  """uint8 pixels and float32 rows, sets that do not divide over 8 devices, tiles smaller
  than a device's share, k = 1 and 3, with and without the self-match."""
  mesh = make_mesh({"data": shape[0], "fsdp": shape[1]}, devices)
  for dtype, scale in ((np.uint8, 256), (np.float32, 1)):
    x = (rng.integers(0, 256, (203, 70)) if scale == 256 else rng.normal(size=(203, 70)))
    q = (rng.integers(0, 256, (37, 70)) if scale == 256 else rng.normal(size=(37, 70)))
    x, q = x.astype(dtype), q.astype(dtype)
    for k in (1, 3):
      dist, idx = ring_knn(q, x, k, mesh=mesh, block_size=8)
      want_d, want_i = brute(q, x, k)
      np.testing.assert_allclose(np.asarray(dist), want_d, rtol=1e-5)
      np.testing.assert_array_equal(np.asarray(idx), want_i)
      dist, idx = ring_knn(x, x, k, mesh=mesh, block_size=16, exclude_self=True)
      want_d, want_i = brute(x, x, k, exclude_self=True)
      np.testing.assert_allclose(np.asarray(dist), want_d, rtol=1e-5)
      np.testing.assert_array_equal(np.asarray(idx), want_i)



@pytest.mark.parametrize("shape", SHAPES)
def test_ring_ties_go_to_the_smallest_index(devices, shape, rng):
  """Exact duplicates spread over every device's share (a memorizer's training set): each
  query's nearest is the first copy, as on one device, whatever block a device sees first."""
  mesh = make_mesh({"data": shape[0], "fsdp": shape[1]}, devices)
  types = rng.integers(0, 256, (12, 64)).astype(np.uint8)
  x = types[rng.integers(0, 12, 96)]
  dist, idx = ring_knn(types, x, 2, mesh=mesh, block_size=8)
  want_d, want_i = brute(types, x, 2)
  np.testing.assert_array_equal(np.asarray(idx), want_i)
  np.testing.assert_allclose(np.asarray(dist), want_d, atol=1e-3)


def test_no_device_holds_the_whole_set(devices):
  """Compiled for 8 devices, the search moves the base by collective permutes only (no
  all-gather); each device's arguments are an eighth of the set, and its temporaries
  shrink with its share (4x more devices, at least 4x less memory): O(n / devices)."""
  x = jax.ShapeDtypeStruct((8192, 256), np.uint8)
  temp = {}
  for shape in ((2, 1), (4, 2)):
    mesh = make_mesh({"data": shape[0], "fsdp": shape[1]}, devices[:shape[0] * shape[1]])
    compiled = _ring_knn.lower(x, x, k=1, block_size=128, mesh=mesh, exclude_self=True,
                               n_base=8192).compile()
    text = compiled.as_text()
    assert "collective-permute" in text and "all-gather" not in text
    memory = compiled.memory_analysis()
    assert memory.argument_size_in_bytes == 2 * 8192 * 256 // mesh.size  # uint8 shares
    temp[mesh.size] = memory.temp_size_in_bytes
  assert temp[8] * 4 <= temp[2], temp


@pytest.mark.parametrize("shape", SHAPES)
def test_generalization_measures_on_the_mesh_equal_one_device(devices, shape, rng):
  mesh = make_mesh({"data": shape[0], "fsdp": shape[1]}, devices)
  train = rng.integers(0, 256, (150, 64)).astype(np.uint8)
  gen = np.concatenate([train[:20], rng.integers(0, 256, (61, 64)).astype(np.uint8)])
  one = collapse.novelty(gen, train, pixel_mse=True, copy_threshold=300.0)
  split = collapse.novelty(gen, train, pixel_mse=True, copy_threshold=300.0, mesh=mesh)
  assert split == pytest.approx(one, rel=1e-6)
  assert one["copy_frac"] == pytest.approx(20 / 81)
  held = collapse.heldout_reference(gen, train, pixel_mse=False, mesh=mesh)
  assert held == pytest.approx(collapse.heldout_reference(gen, train, pixel_mse=False))
