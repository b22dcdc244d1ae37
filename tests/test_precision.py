"""Distances, statistics and embeddings at full float32 on every backend (precision.py).

XLA:CPU computes float32 products in float32 whatever they ask for, so these tests read the
precision each product asks for in the lowered StableHLO (tests/aot reads what the TPU
compiler keeps), and show with bf16-rounded products, as a TPU's default computes them,
what it would change.
"""

import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from collapse_jax import precision, sharding
from collapse_jax.kernels import knn, selection
from collapse_jax.kernels.entropy import kl_entropy
from collapse_jax.metrics import precision_recall
from collapse_jax.plan import hlo, programs
from collapse_jax.study import sweep
from tests.test_entropy import kl_formula

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "configs", "digits.py")


def test_for_dtype():
  assert precision.for_dtype(jnp.float32) == jax.lax.Precision.HIGHEST
  assert precision.for_dtype(jnp.float64) == jax.lax.Precision.HIGHEST
  assert precision.for_dtype(jnp.bfloat16) is None
  assert precision.for_dtype(jnp.float16) is None


def test_reduced_products_finds_default_float32_products_only():
  x = jax.ShapeDtypeStruct((8, 32), jnp.float32)
  w = jax.ShapeDtypeStruct((2, 6, 6, 4), jnp.float32)
  conv = lambda w, p: jax.lax.conv_general_dilated(
      w, w[0, :3, :3, :, None].repeat(4, -1), (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=p)
  cases = {
      (lambda a: a @ a.T, x): 1,
      (lambda a: jnp.dot(a, a.T, precision="highest"), x): 0,
      (lambda a: precision.dot_f32(a, a, ((1,), (1,))), x): 0,
      (lambda a: precision.dot_f32(a.astype(jnp.bfloat16), a.astype(jnp.bfloat16),
                                   ((1,), (1,))), x): 0,
      (lambda w: conv(w, None), w): 1,
      (lambda w: conv(w, "highest"), w): 0,
  }
  for (f, arg), want in cases.items():
    assert len(hlo.reduced_products(jax.jit(f).lower(arg).as_text())) == want


def _loop_config(eval_dtype: str):
  """The digits config with both encoders on (their weights are only shapes here)."""
  c = sweep.load_config(DIGITS)
  c.features, c.features_weights = "dinov2", "dinov2-small"
  c.eval.fid_weights, c.eval.dtype = "pt_inception.pth", eval_dtype
  c.loop.n_train, c.loop.pool_factor = 64, 2
  return c


@pytest.mark.parametrize("shards", [1, 8])
def test_kernels_and_extractors_ask_for_full_float32(shards, devices):
  """The loop's entropy, selection and feature-extraction programs (as the planner builds
  them: single-device and sharded forms), the kNN of the generalization score and the
  precision/recall balls: no float32 product left at the backend's default."""
  mesh = sharding.make_mesh({"data": shards, "fsdp": 1}, devices[:shards])
  progs = []
  for dtype in ("float32", "bfloat16"):
    c = _loop_config(dtype)
    progs += programs.encoder_programs(c, mesh)
  progs += programs.kernel_programs(c, mesh)
  names = {p.name for p in progs}
  assert {"dinov2 features (pool)", "inception features (pool)", "learned features (pool)",
          "entropy dinov2 (pool)", "entropy learned (pool)",
          "entropy pixels (train)", "greedy selection", "threshold selection"} <= names
  lowered = {p.name + f" [{i}]": p.fn.lower(*p.args) for i, p in enumerate(progs)}
  x = jax.ShapeDtypeStruct((96, 384), jnp.float32)
  r = jax.ShapeDtypeStruct((96,), jnp.float32)
  lowered["knn (generalization score)"] = knn.knn.lower(x, x, 1, block_size=32)
  lowered["precision/recall balls"] = precision_recall.inside_any_ball.lower(x, x, r, 32)
  for name, low in lowered.items():
    text = low.as_text()
    assert "dot_general" in text or "convolution" in text, name
    assert hlo.reduced_products(text) == [], name


# --- What the precision prevents -----------------------------------------------------------


def _dinov2_like(rng, n=512, d=384):
  """Features around a shared direction, nearest neighbours at ~3% of the norm (DINOv2 CLS
  features of one dataset sit in a narrow cone)."""
  mu = rng.standard_normal(d)
  x = mu + 0.025 * rng.standard_normal((n, d))
  return x.astype(np.float32)


def _sq_dists(x, c, bf16_product: bool):
  """||x_i - c||^2 from the norms and x.c in float64; with `bf16_product`, the inputs of the
  product rounded to bfloat16 as one bf16 pass (TPU's float32 default) computes it."""
  x64, c64 = x.astype(np.float64), c.astype(np.float64)
  if bf16_product:
    xr = x.astype(ml_dtypes.bfloat16).astype(np.float64)
    cr = c.astype(ml_dtypes.bfloat16).astype(np.float64)
    dot = xr @ cr
  else:
    dot = x64 @ c64
  return np.maximum((x64 * x64).sum(-1) + c64 @ c64 - 2 * dot, 0)


def _greedy(x, start, k, bf16_product: bool):
  mind = _sq_dists(x, x[start], bf16_product)
  mind[start] = -np.inf
  picks = [start]
  for _ in range(k - 1):
    g = int(np.argmax(mind))
    picks.append(g)
    mind = np.minimum(mind, _sq_dists(x, x[g], bf16_product))
    mind[g] = -np.inf
  return picks


def _worst_pick(x, picks):
  """Over the picks, the largest shortfall of the picked point's exact squared min-distance
  below the best available one (0 for exact greedy), and that shortfall over the best."""
  x64 = x.astype(np.float64)
  mind = ((x64 - x64[picks[0]]) ** 2).sum(-1)
  mind[picks[0]] = -np.inf
  worst = (0.0, 0.0)
  for g in picks[1:]:
    best = mind.max()
    worst = max(worst, (best - mind[g], (best - mind[g]) / best))
    mind = np.minimum(mind, ((x64 - x64[g]) ** 2).sum(-1))
    mind[g] = -np.inf
  return worst


def _kl_entropy(x, bf16_product: bool):
  """The KL estimator (k = 1) as the kernel computes it: each point's neighbour found from
  the expansion, its distance then recomputed from the differences."""
  r2 = np.stack([_sq_dists(x, row, bf16_product) for row in x])
  np.fill_diagonal(r2, np.inf)
  x64 = x.astype(np.float64)
  r = np.sqrt(((x64 - x64[r2.argmin(1)]) ** 2).sum(-1))
  return kl_formula(r, x.shape[1])


def test_bf16_products_would_change_greedy_picks_and_entropy_and_the_kernels_do_not(rng):
  x = _dinov2_like(rng)
  start, k = 0, 64
  exact_h = _kl_entropy(x, bf16_product=False)

  # What a TPU's default precision would compute: other picks, another entropy.
  bf16_picks = _greedy(x, start, k, bf16_product=True)
  assert bf16_picks != _greedy(x, start, k, bf16_product=False)
  assert _worst_pick(x, bf16_picks)[1] > 0.05
  assert abs(_kl_entropy(x, bf16_product=True) - exact_h) > 5.0

  # The kernels as shipped: exact greedy up to near-ties within float32 rounding of the
  # expansion (a few ulps of ||x||^2 per term), the entropy to 1e-5.
  picks = np.asarray(selection.greedy_select(x, k, start=start)).tolist()
  assert len(set(picks)) == k
  ulp_scale = np.finfo(np.float32).eps * float((x.astype(np.float64) ** 2).sum(1).max())
  assert _worst_pick(x, picks)[0] < 64 * ulp_scale
  assert abs(kl_entropy(x) - exact_h) < 1e-5 * abs(exact_h) + 1e-3
