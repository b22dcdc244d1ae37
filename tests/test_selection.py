"""Greedy and threshold-decay selection: references, invariants, sharding."""

import jax
import numpy as np
import pytest

from collapse_jax.kernels.entropy import kl_entropy
from collapse_jax.kernels.selection import (
    greedy_select,
    threshold_decay_select,
)
from collapse_jax.sharding import make_mesh


def numpy_farthest_point(x, n_select, start):
  x = x.astype(np.float64)
  selected = [start]
  mind = np.linalg.norm(x - x[start], axis=1)
  for _ in range(n_select - 1):
    g = int(np.argmax(mind))
    selected.append(g)
    mind = np.minimum(mind, np.linalg.norm(x - x[g], axis=1))
  return np.array(selected)


def fresh(rng, n, d):
  return rng.normal(size=(n, d)).astype(np.float32)


def test_greedy_equals_numpy_reference(rng):
  x = fresh(rng, 777, 20)
  start = int(rng.integers(777))
  sel = np.asarray(greedy_select(x, 150, start=start))
  assert sel.dtype == np.int32 and sel[0] == start
  ref = numpy_farthest_point(x, 150, start)
  # Equal up to the first float32 near-tie (rare at d = 20), the greedy rule throughout.
  first_diff = int(np.argmax(sel != ref)) if (sel != ref).any() else 150
  assert first_diff >= 20
  assert_farthest_point_order(x, sel, 150)


def test_greedy_has_higher_entropy_than_random(rng):
  x = fresh(rng, 2000, 8)
  greedy = np.asarray(greedy_select(x, 300, key=jax.random.key(0)))
  rand = rng.choice(2000, 300, replace=False)  # the loop's random arm
  assert len(set(greedy.tolist())) == 300
  assert kl_entropy(x[greedy]) > kl_entropy(x[rand]) + 0.5


@pytest.mark.parametrize("every_pass", [False, True])
def test_threshold_invariants(every_pass, rng):
  x = fresh(rng, 600, 6)
  sel, taus = threshold_decay_select(x, 200, 6.0, 0.9, key=jax.random.key(3),
                                     decay_every_pass=every_pass, return_thresholds=True)
  sel, taus = np.asarray(sel), np.asarray(taus)
  assert len(set(sel.tolist())) == 200 and sel.dtype == np.int32
  for t in range(1, 200):
    dmin = np.linalg.norm(x[sel[:t]] - x[sel[t]], axis=1).min()
    assert dmin > taus[t] * (1 - 1e-5), (t, dmin, taus[t])
  assert np.all(np.diff(taus[1:]) <= 0) and taus[1] <= 6.0
  # tau really decays from tau0 in factors of 0.9.
  k = np.log(taus[1:] / 6.0) / np.log(0.9)
  np.testing.assert_allclose(k, np.round(k), atol=1e-3)


def numpy_threshold_decay(x, n_select, tau0, decay, order, every_pass):
  """Algorithm 2 written plainly: passes over `order`, D starting with order[0]."""
  x = x.astype(np.float64)
  selected, taus, tau = [int(order[0])], [0.0], tau0
  while len(selected) < n_select:
    added = 0
    for j in order:
      if j in selected:
        continue
      if np.linalg.norm(x[selected] - x[j], axis=1).min() > tau:
        selected.append(int(j))
        taus.append(tau)
        added += 1
        if len(selected) == n_select:
          break
    if every_pass or added == 0:
      tau *= decay
  return np.array(selected), np.array(taus)


@pytest.mark.parametrize("every_pass", [False, True])
def test_threshold_equals_plain_reference(every_pass, rng):
  x = fresh(rng, 300, 3)
  key = jax.random.key(int(rng.integers(1000)))
  order = np.asarray(jax.random.permutation(jax.random.split(key)[0], 300))
  sel, taus = threshold_decay_select(x, 80, 3.0, 0.8, key=key, decay_every_pass=every_pass,
                                     return_thresholds=True)
  ref_sel, ref_taus = numpy_threshold_decay(x, 80, 3.0, 0.8, order, every_pass)
  np.testing.assert_array_equal(sel, ref_sel)
  np.testing.assert_allclose(taus, ref_taus, rtol=1e-5)


def test_threshold_terminates_on_a_pool_of_duplicates(rng):
  x = np.repeat(fresh(rng, 5, 4), 40, axis=0)
  sel = np.asarray(threshold_decay_select(x, 60, 100.0, 0.5, key=jax.random.key(0)))
  assert len(set(sel.tolist())) == 60
  # The five distinct points come first; duplicates only fill the rest.
  assert len({tuple(r) for r in x[sel[:5]]}) == 5


def assert_farthest_point_order(x, sel, n_check, rtol=1e-4):
  """Each of the first `n_check` picks is farthest (to rtol, float64) from those before it:
  the greedy rule itself, which holds whichever of two float32-tied candidates was taken."""
  x = x.astype(np.float64)
  mind = np.linalg.norm(x - x[sel[0]], axis=1)
  taken = np.zeros(len(x), bool)
  taken[sel[0]] = True
  for i, g in enumerate(sel[1:n_check], start=1):
    best = mind[~taken].max()
    assert not taken[g], f"pick {i} repeats index {g}"
    assert mind[g] >= best * (1 - rtol), f"pick {i}: distance {mind[g]} < farthest {best}"
    taken[g] = True
    mind = np.minimum(mind, np.linalg.norm(x - x[g], axis=1))


@pytest.mark.parametrize("sharded", [False, True])
def test_greedy_never_selects_an_index_twice(devices, sharded, rng):
  """800 picks from a pool of 1,000 rows with only 700 distinct: 800 distinct indices, all
  700 distinct rows first, then other copies (as the authors' -inf mask)."""
  distinct = fresh(rng, 700, 12)
  x = np.concatenate([distinct, distinct[rng.integers(0, 700, 300)]])[rng.permutation(1000)]
  mesh = make_mesh({"data": 8, "fsdp": 1}, devices) if sharded else None
  start = int(rng.integers(1000))
  sel = np.asarray(greedy_select(x, 800, start=start, mesh=mesh))
  assert sel[0] == start
  assert len(set(sel.tolist())) == 800
  assert len({r.tobytes() for r in x[sel[:700]]}) == 700
  # While distances decide, every pick is the farthest point (ties within float32 rounding
  # may go either way, so the order is checked by the rule, not against one sequence).
  assert_farthest_point_order(x, sel, 700)


@pytest.mark.parametrize("shape", [(8, 1), (4, 2), (2, 4)])
def test_sharded_equals_single_device(devices, shape, rng):
  """The pool split over all 8 devices (both mesh axes) picks what one device picks, also
  for a pool that does not divide over them (padded) and for uint8 pixels kept uint8."""
  x = fresh(rng, 1003, 16)
  mesh = make_mesh({"data": shape[0], "fsdp": shape[1]}, devices)
  np.testing.assert_array_equal(greedy_select(x, 120, start=11, mesh=mesh),
                                greedy_select(x, 120, start=11))
  key = jax.random.key(5)
  np.testing.assert_array_equal(
      threshold_decay_select(x, 150, 8.0, 0.95, key=key, mesh=mesh),
      threshold_decay_select(x, 150, 8.0, 0.95, key=key))
  pixels = rng.integers(0, 256, (501, 48)).astype(np.uint8)
  as_float = pixels.astype(np.float32)
  np.testing.assert_array_equal(greedy_select(pixels, 60, start=7, mesh=mesh),
                                greedy_select(as_float, 60, start=7))
  np.testing.assert_array_equal(
      threshold_decay_select(pixels, 70, 900.0, 0.9, key=key, mesh=mesh),
      threshold_decay_select(as_float, 70, 900.0, 0.9, key=key))


def test_errors(rng):
  with pytest.raises(ValueError, match="n_select=11"):
    greedy_select(fresh(rng, 10, 2), 11)
  with pytest.raises(ValueError, match="NaN"):
    greedy_select(np.full((10, 2), np.nan, np.float32), 3)
  with pytest.raises(ValueError, match="decay"):
    threshold_decay_select(fresh(rng, 10, 2), 3, 1.0, 1.5)
