"""The matmul convolution (models/conv.py) against lax.conv_general_dilated and its
gradients, on fresh random inputs, and the UNet built with it against the native one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from collapse_jax import xla_flags
from collapse_jax.models import conv as conv_lib
from collapse_jax.models.unet import UNet

# (kernel, stride, padding, C_in, C_out, H): the UNet's convolutions (3x3 'same', the 3x3
# stride-2 downsampler, the 1x1 shortcut) at its channel counts, plus an asymmetric pad.
CASES = [
    (3, 1, ((1, 1), (1, 1)), 3, 48, 8),
    (3, 1, ((1, 1), (1, 1)), 96, 48, 8),
    (3, 2, ((1, 1), (1, 1)), 48, 48, 8),
    (3, 2, ((1, 1), (1, 1)), 16, 32, 7),
    (1, 1, ((0, 0), (0, 0)), 144, 96, 4),
    (3, 1, ((2, 0), (0, 1)), 5, 7, 6),
]


def rel_l2(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / np.linalg.norm(b)


def _native(x, k, stride, padding):
  return lax.conv_general_dilated(x, k, (stride, stride), padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=lax.Precision.HIGHEST)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_matmul_conv_and_its_gradients_equal_lax(case, dtype, rng):
  ksize, stride, padding, cin, cout, h = case
  x = jnp.asarray(rng.normal(size=(3, h, h + 1, cin)), dtype)
  k = jnp.asarray(rng.normal(size=(ksize, ksize, cin, cout)) / np.sqrt(ksize * ksize * cin),
                  dtype)
  ours = jax.jit(lambda x, k: conv_lib.matmul_conv(x, k, (stride, stride), padding))
  # The reference in float32 from the same (rounded) inputs: bf16 differs by its rounding.
  ref = lambda x, k: _native(x.astype(jnp.float32), k.astype(jnp.float32), stride, padding)
  y, y_ref = ours(x, k), ref(x, k)
  assert y.shape == y_ref.shape and y.dtype == dtype
  tol = dict(rtol=2e-2, atol=2e-2) if dtype == jnp.bfloat16 else dict(rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.float32(y), y_ref, **tol)
  g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
  grads = jax.jit(jax.grad(lambda x, k: jnp.sum(ours(x, k).astype(jnp.float32) * g), (0, 1)))
  grads_ref = jax.grad(lambda x, k: jnp.sum(ref(x, k) * g), (0, 1))
  for a, b in zip(grads(x, k), grads_ref(x, k), strict=True):
    scale = float(jnp.max(jnp.abs(b)))
    np.testing.assert_allclose(np.float32(a) / scale, np.float32(b) / scale,
                               atol=3e-2 if dtype == jnp.bfloat16 else 1e-5)


def test_conv_takes_the_matmul_form_on_small_cpu_levels_and_native_elsewhere():
  """`conv` lowers to dots on the CPU's 2x2 levels and keeps XLA's convolution on larger
  ones; the same function lowered for a GPU keeps the convolution (what TPU/GPU get)."""
  dn = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
  f = lambda x, k: conv_lib.conv(x, k, (1, 1), [(1, 1), (1, 1)], dimension_numbers=dn)
  k = jnp.zeros((3, 3, 4, 8))
  small, large = jnp.zeros((2, 2, 2, 4)), jnp.zeros((2, 8, 8, 4))
  cpu = jax.jit(f).lower(small, k).as_text()
  assert "convolution" not in cpu and "dot_general" in cpu
  assert "convolution" in jax.jit(f).lower(large, k).as_text()
  other = jax.jit(f).trace(small, k).lower(lowering_platforms=("cuda",)).as_text()
  assert "convolution" in other


def test_conv_falls_back_for_what_the_matmul_form_does_not_cover(rng):
  x = jnp.asarray(rng.normal(size=(2, 6, 6, 4)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 2, 6)), jnp.float32)
  dn = ("NHWC", "HWIO", "NHWC")
  got = conv_lib.conv(x, k, (1, 1), "SAME", dimension_numbers=dn, feature_group_count=2)
  want = lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dn,
                                  feature_group_count=2)
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_unet_with_matmul_conv_equals_native(dtype, rng):
  """Same parameters, same outputs and parameter gradients as the native convolution."""
  kw = dict(channels=(16, 32), out_channels=3, attention_levels=(1,), norm_groups=8,
            dtype=dtype)
  ours, native = UNet(**kw), UNet(**kw, cpu_kernels=False)
  x = jnp.asarray(rng.uniform(-1, 1, (4, 8, 8, 3)), jnp.float32)
  t = jnp.asarray(rng.integers(0, 1000, 4))
  init = jax.jit(ours.init, compiler_options=xla_flags.once_compiler_options("cpu"))
  params = init(jax.random.key(int(rng.integers(1 << 30))), x, t)
  abstract = jax.eval_shape(native.init, jax.random.key(0), x, t)
  assert jax.tree.structure(params) == jax.tree.structure(abstract)
  loss = lambda m: jax.jit(jax.value_and_grad(lambda p: jnp.mean(m.apply(p, x, t) ** 2)))
  (l1, g1), (l2, g2) = loss(ours)(params), loss(native)(params)
  if dtype == "bfloat16":
    # bf16 rounds differently through the whole net: relative L2 error, over all gradients
    # (measured <= 0.03 on 25 seeds) and per leaf (<= 0.08), not element by element.
    np.testing.assert_allclose(l1, l2, rtol=8e-2)
    flat = lambda g: np.concatenate([np.ravel(v) for v in jax.tree.leaves(g)]).astype(np.float64)
    assert rel_l2(flat(g1), flat(g2)) < 0.06
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g1), jax.tree.leaves(g2),
                            strict=True):
      if "['key']['bias']" not in jax.tree_util.keystr(path):
        assert rel_l2(a, b) < 0.2, jax.tree_util.keystr(path)
    return
  np.testing.assert_allclose(l1, l2, rtol=1e-4)
  leaves1 = jax.tree_util.tree_leaves_with_path(g1)
  for (path, a), b in zip(leaves1, jax.tree.leaves(g2), strict=True):
    if "['key']['bias']" in jax.tree_util.keystr(path):
      continue  # an exactly zero gradient (softmax is shift-invariant): rounding noise only
    scale = float(jnp.max(jnp.abs(b)))
    assert scale > 0, path
    np.testing.assert_allclose(np.asarray(a) / scale, np.asarray(b) / scale, atol=1e-4,
                               err_msg=jax.tree_util.keystr(path))


def test_config_model_cpu_kernels_reaches_the_unet():
  """`--config.model.cpu_kernels=False` builds the UNet with XLA's own convs and GroupNorm."""
  from collapse_jax import config_lib
  from collapse_jax.models.unet import unet_from_config

  config = config_lib.base_config()
  assert unet_from_config(config.model, (32, 32, 3), 0).cpu_kernels
  config.model.cpu_kernels = False
  assert not unet_from_config(config.model, (32, 32, 3), 0).cpu_kernels
