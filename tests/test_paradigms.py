"""Source bookkeeping of the training-set paradigms."""

import jax
import numpy as np
import pytest

from collapse_jax import sharding
from collapse_jax.loop.paradigms import ImageSet, even_counts, next_training_set


def image_set(n, source, labels=False):
  imgs = np.full((n, 2, 2, 1), source, np.uint8)
  return ImageSet(imgs, np.arange(n, dtype=np.int32) % 3 if labels else None,
                  np.full(n, source, np.int32))


def first_n(cands, n, rng):
  return np.arange(n)


def build(paradigm, gens, n=30, fresh=0.0, vanilla=True, current=None):
  real = image_set(100, 0)
  pools = [image_set(2 * n, g) for g in range(1, gens + 1)]
  return next_training_set(paradigm, current=current or real, real=real, pools=pools, n=n,
                           select=first_n, vanilla=vanilla, fresh_fraction=fresh,
                           rng=np.random.default_rng(0))


def test_even_counts():
  assert even_counts(30, 4) == [8, 8, 7, 7]
  assert sum(even_counts(32768, 9)) == 32768


@pytest.mark.parametrize("gens", [1, 2, 5])
def test_accumulate_vanilla_uses_the_even_subsample(gens):
  out = build("accumulate", gens, n=31)
  counts = [int((out.sources == s).sum()) for s in range(gens + 1)]
  assert counts == even_counts(31, gens + 1)
  assert len(set(map(bytes, out.images))) <= len(out)  # images are real copies of sources


def test_accumulate_with_selection_picks_from_the_union():
  out = build("accumulate", 3, n=30, vanilla=False)
  assert len(out) == 30 and set(out.sources) <= {0, 1, 2, 3}


@pytest.mark.parametrize("fresh", [0.0, 0.25, 0.5, 1.0])
def test_fresh_fraction_is_lambda(fresh):
  out = build("fresh", 2, n=40, fresh=fresh)
  assert len(out) == 40
  assert (out.sources == 0).sum() == round(fresh * 40)
  assert set(out.sources[out.sources != 0]) <= {2}  # the rest from the newest pool only


def test_replace_and_accumulate_all():
  out = build("replace", 3, n=30)
  assert len(out) == 30 and set(out.sources) == {3}
  current = image_set(50, 0)
  out = build("accumulate_all", 2, n=30, current=current)
  assert len(out) == 80 and (out.sources == 2).sum() == 30


def test_unknown_paradigm():
  with pytest.raises(ValueError, match="config.loop.paradigm"):
    build("recycle", 1)


@pytest.mark.parametrize("paradigm,vanilla", [("replace", False), ("accumulate", True),
                                              ("accumulate", False), ("fresh", False)])
def test_sets_on_the_mesh_equal_host_sets(paradigm, vanilla, rng):
  """Random images and picks: the device path (take_rows / concat_rows, split by rows over
  a (4, 2) mesh, odd sizes replicated) gives the same images as numpy indexing."""
  mesh = sharding.make_mesh({"data": 4, "fsdp": 2})
  hosts = [ImageSet(rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8),
                    np.arange(n, dtype=np.int32) % 3, np.full(n, g, np.int32))
           for g, n in enumerate((48, 64, 64))]
  devices = [ImageSet(sharding.put_rows(s.images, mesh), s.labels, s.sources) for s in hosts]
  pick = lambda cands, n, r: r.choice(len(cands), n, replace=False)
  out = [next_training_set(paradigm, current=sets[0], real=sets[0], pools=sets[1:], n=36,
                           select=pick, vanilla=vanilla, fresh_fraction=0.25,
                           rng=np.random.default_rng(7)) for sets in (hosts, devices)]
  assert isinstance(out[1].images, jax.Array)
  np.testing.assert_array_equal(np.asarray(out[1].images), out[0].images)
  np.testing.assert_array_equal(out[1].sources, out[0].sources)
  np.testing.assert_array_equal(out[1].labels, out[0].labels)
