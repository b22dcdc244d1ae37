"""GroupNorm with a hand-written gradient: two passes over the activations each way.

Flax's GroupNorm differentiated by autodiff reads the activations in several reductions and
elementwise passes, and XLA:CPU splits each parameter-gradient reduction into a slow
reduce-window (benchmarks/RESULTS.md). Here the forward pass is one reduction (per-channel
sums of x and x^2, grouped afterwards) and one pass applying a per-(image, channel) scale and
shift; the backward pass is one reduction (per-channel sums of g and g*x) and one
elementwise pass. Same parameters (`scale`, `bias`) and the same results as
`flax.linen.GroupNorm` to float rounding. The CPU takes it; other platforms differentiate the
same forward pass by autodiff.
"""

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn


def _group_stats(x32, groups: int, eps: float):
  """Per-(image, group) mean and 1/std from per-(image, channel) sums, float32."""
  n, c = x32.shape[0], x32.shape[-1]
  axes = tuple(range(1, x32.ndim - 1))
  s1 = jnp.sum(x32, axes).reshape(n, groups, c // groups)
  s2 = jnp.sum(x32 * x32, axes).reshape(n, groups, c // groups)
  count = x32.size // (n * groups)
  mean = jnp.sum(s1, -1) / count
  var = jnp.maximum(jnp.sum(s2, -1) / count - mean * mean, 0.0)
  return mean, jax.lax.rsqrt(var + eps)


def _per_channel(v, c: int):
  """(n, groups) -> (n, c): each group's value for its channels."""
  return jnp.repeat(v, c // v.shape[1], axis=1)


def _bcast(v, ndim: int):
  """(n, c) -> (n, 1, ..., 1, c) for broadcasting over the spatial axes."""
  return v.reshape(v.shape[0], *([1] * (ndim - 2)), v.shape[1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def group_norm(x, scale, bias, groups: int, eps: float):
  """y = (x - mean) / sqrt(var + eps) * scale + bias, statistics per image and group of
  channels over all non-batch axes; x is (N, ..., C), computed in float32, returned in
  x's dtype."""
  return _forward(x, scale, bias, groups, eps)[0]


def _forward(x, scale, bias, groups, eps):
  c = x.shape[-1]
  x32 = x.astype(jnp.float32)
  mean, rstd = _group_stats(x32, groups, eps)
  a = _per_channel(rstd, c) * scale.astype(jnp.float32)  # (n, c)
  b = bias.astype(jnp.float32) - _per_channel(mean, c) * a
  y = x32 * _bcast(a, x.ndim) + _bcast(b, x.ndim)
  return y.astype(x.dtype), (mean, rstd)


def _fwd(x, scale, bias, groups, eps):
  y, (mean, rstd) = _forward(x, scale, bias, groups, eps)
  return y, (x, scale, bias, mean, rstd)


def _bwd(groups, eps, res, g):
  x, scale, bias, mean, rstd = res
  n, c = x.shape[0], x.shape[-1]
  axes = tuple(range(1, x.ndim - 1))
  x32, g32 = x.astype(jnp.float32), g.astype(jnp.float32)
  sg = jnp.sum(g32, axes)  # (n, c): sum of g
  sgx = jnp.sum(g32 * x32, axes)  # (n, c): sum of g * x
  mean_c, rstd_c = _per_channel(mean, c), _per_channel(rstd, c)
  sgxhat = (sgx - mean_c * sg) * rstd_c  # sum of g * xhat, per (n, c)
  dbias = jnp.sum(sg, 0)
  dscale = jnp.sum(sgxhat, 0)
  # dx = rstd * gamma * g - rstd/count * (sum_group(g gamma) + xhat sum_group(g gamma xhat))
  gamma = scale.astype(jnp.float32)
  count = x.size // (n * groups)
  grp = lambda v: _per_channel(jnp.sum(v.reshape(n, groups, c // groups), -1), c)
  m1 = grp(sg * gamma) / count  # mean over the group of g * gamma
  m2 = grp(sgxhat * gamma) / count  # mean over the group of g * gamma * xhat
  # dx = rstd * (g gamma - m1 - xhat m2), xhat = (x - mean) rstd: one elementwise pass.
  a = rstd_c * gamma
  b = -rstd_c * (m1 - mean_c * rstd_c * m2)
  dx = g32 * _bcast(a, x.ndim) - x32 * _bcast(rstd_c * rstd_c * m2, x.ndim) + _bcast(b, x.ndim)
  return dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(bias.dtype)


group_norm.defvjp(_fwd, _bwd)


class GroupNorm(nn.Module):
  """`flax.linen.GroupNorm`'s parameters and results (scale ones, bias zeros, statistics in
  float32) with `group_norm`'s two-pass gradient. Named like Flax's, so checkpoints match."""

  num_groups: int
  epsilon: float = 1e-5
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    if c % self.num_groups:
      raise ValueError(f"{c} channels do not split into {self.num_groups} groups.")
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    x = x.astype(self.dtype or x.dtype)
    args = (self.num_groups, self.epsilon)
    # The hand-written gradient where it was measured to pay (XLA:CPU); elsewhere the same
    # forward pass, differentiated by autodiff.
    return jax.lax.platform_dependent(
        x, scale, bias,
        cpu=lambda x, s, b: group_norm(x, s, b, *args),
        default=lambda x, s, b: _forward(x, s, b, *args)[0],
    )
