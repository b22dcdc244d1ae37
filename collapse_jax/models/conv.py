"""Convolution as one matmul over shifted inputs (im2col), where XLA:CPU's is slow.

A k x k convolution is a matmul of the k*k shifted copies of the input, side by side on the
channel axis, with the kernel flattened to (k*k*C_in, C_out); its gradients, by autodiff,
are matmuls and strided pads. XLA:CPU's own convolution (Eigen) is near the matmul rate on
the UNet's large levels but very slow on its smallest ones (2x2, 1x1: ~40 ms for a 1 ms
backward, benchmarks/RESULTS.md), where im2col is nearly free. `conv` takes the matmul form
there, on the CPU only: it picks per platform when the program is lowered
(`lax.platform_dependent`), so TPU and GPU programs keep the native convolution. Same
parameters, same results to float rounding.
"""

import jax
import jax.numpy as jnp
from jax import lax

# Measured (benchmarks/RESULTS.md, UNet48 train step): XLA:CPU's own convolution is as fast
# as the matmul form on large images but ~40x slower than it on the 2x2 and 1x1 levels,
# where im2col costs nothing; above 4 pixels the extra copies of im2col lose.
MATMUL_MAX_PIXELS = 4


def _patches(x: jax.Array, kh: int, kw: int, strides, padding) -> jax.Array:
  """(N, H, W, C) -> (N, Ho, Wo, kh*kw*C): the window of each output pixel, offsets major."""
  (pt, pb), (pl, pr) = padding
  x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  sh, sw = strides
  ho = (x.shape[1] - kh) // sh + 1
  wo = (x.shape[2] - kw) // sw + 1
  cols = [
      lax.slice(x, (0, dy, dx, 0), (x.shape[0], dy + sh * (ho - 1) + 1, dx + sw * (wo - 1) + 1,
                                    x.shape[3]), (1, sh, sw, 1))
      for dy in range(kh) for dx in range(kw)
  ]
  return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def matmul_conv(x: jax.Array, kernel: jax.Array, strides, padding,
                precision=None) -> jax.Array:
  """NHWC x HWIO convolution with explicit padding ((top, bottom), (left, right)), as
  im2col + one matmul. Accumulates in float32 and returns x's dtype."""
  kh, kw, cin, cout = kernel.shape
  cols = _patches(x, kh, kw, tuple(strides), tuple(tuple(p) for p in padding))
  out = lax.dot_general(cols, kernel.reshape(kh * kw * cin, cout).astype(cols.dtype),
                        (((3,), (0,)), ((), ())), precision=precision,
                        preferred_element_type=jnp.float32)
  return out.astype(x.dtype)


def _native(x, kernel, strides, padding, precision=None):
  """XLA's own convolution; `conv` passes strides and padding already as tuples."""
  return lax.conv_general_dilated(x, kernel, strides, padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=precision)


def conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
         preferred_element_type=None):
  """`lax.conv_general_dilated`'s signature (what `flax.linen.Conv` calls): the matmul form
  for inputs of at most MATMUL_MAX_PIXELS pixels on the CPU, the native convolution for
  larger ones and on every other platform. Cases the matmul form does not cover (dilation,
  groups, string padding, other layouts) take the native one."""
  plain = (
      lhs.ndim == 4 and feature_group_count == 1 and batch_group_count == 1
      and all(d == 1 for d in (lhs_dilation or (1, 1)) + (rhs_dilation or (1, 1)))
      and not isinstance(padding, str) and preferred_element_type is None
      and _is_nhwc(dimension_numbers, lhs.shape, rhs.shape)
  )
  if not plain:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
        feature_group_count, batch_group_count, precision, preferred_element_type)
  args = (tuple(window_strides), tuple(tuple(p) for p in padding), precision)
  if lhs.shape[1] * lhs.shape[2] > MATMUL_MAX_PIXELS:
    return _native(lhs, rhs, *args)
  return lax.platform_dependent(
      lhs, rhs,
      cpu=lambda x, k: matmul_conv(x, k, *args),
      default=lambda x, k: _native(x, k, *args),
  )


def _is_nhwc(dimension_numbers, lhs_shape, rhs_shape) -> bool:
  """Whether the dimension numbers are NHWC / HWIO / NHWC (flax's default for 2-D)."""
  if dimension_numbers is None:
    return False
  dn = lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
  return dn == lax.conv_dimension_numbers(lhs_shape, rhs_shape, ("NHWC", "HWIO", "NHWC"))
