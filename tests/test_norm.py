"""models/norm.py's GroupNorm and its hand-written gradient against flax.linen.GroupNorm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from collapse_jax.models.norm import GroupNorm, group_norm


@pytest.mark.parametrize("shape,groups", [((4, 8, 8, 32), 8), ((3, 5, 7, 48), 16),
                                          ((6, 10, 12), 4)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_group_norm_and_gradients_equal_flax(shape, groups, dtype, rng):
  x = jnp.asarray(rng.normal(size=shape) * 3 + 1.5, dtype)
  ref, ours = nn.GroupNorm(num_groups=groups, epsilon=1e-5, dtype=dtype), GroupNorm(groups,
                                                                                 dtype=dtype)
  params = ref.init(jax.random.key(0), x)
  assert jax.tree.structure(params) == jax.tree.structure(ours.init(jax.random.key(0), x))
  params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype), params)
  g = jnp.asarray(rng.normal(size=shape), jnp.float32)
  tol = 3e-2 if dtype == jnp.bfloat16 else 2e-5
  y_ref, y = ref.apply(params, x), jax.jit(ours.apply)(params, x)
  assert y.dtype == y_ref.dtype
  np.testing.assert_allclose(np.float32(y), np.float32(y_ref), atol=tol * 4, rtol=tol)
  loss = lambda m: jax.jit(jax.grad(
      lambda p, x: jnp.sum(m.apply(p, x).astype(jnp.float32) * g), (0, 1)))(params, x)
  for a, b in zip(jax.tree.leaves(loss(ours)), jax.tree.leaves(loss(ref)), strict=True):
    scale = float(jnp.max(jnp.abs(np.float32(b))))
    np.testing.assert_allclose(np.float32(a) / scale, np.float32(b) / scale, atol=tol)


def test_group_norm_gradient_is_the_autodiff_one_of_its_forward(rng):
  """The custom VJP against jax.grad of the plain formula (float64-free check in f32)."""
  x = jnp.asarray(rng.normal(size=(2, 4, 4, 12)), jnp.float32)
  s, b = (jnp.asarray(rng.normal(size=12), jnp.float32) for _ in range(2))

  def plain(x, s, b):
    xg = x.reshape(2, 4, 4, 3, 4)
    mean = xg.mean((1, 2, 4), keepdims=True)
    var = xg.var((1, 2, 4), keepdims=True)
    return ((xg - mean) / jnp.sqrt(var + 1e-5)).reshape(x.shape) * s + b

  g = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  f = lambda fn: jax.grad(lambda *a: jnp.sum(fn(*a) * g), (0, 1, 2))(x, s, b)
  for a, r in zip(f(lambda x, s, b: group_norm(x, s, b, 3, 1e-5)), f(plain), strict=True):
    np.testing.assert_allclose(a, r, atol=2e-5, rtol=1e-4)
