"""Source bookkeeping of the training-set paradigms."""

import numpy as np
import pytest

from collapse_jax.paradigms import ImageSet, even_counts, next_training_set


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
