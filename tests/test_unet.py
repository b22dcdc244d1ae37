import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import xla_flags
from collapse_jax.models.unet import PRESETS, UNet, timestep_embedding


def count(model, shape, labels=None):
  x = jnp.zeros((1, *shape))
  t = jnp.zeros((1,), jnp.int32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), x, t, labels))
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def test_unet48_matches_diffusers_parameter_count():
  # diffusers UNet2DModel(sample_size=32, block_out_channels=(48, 48, 96, 96, 192, 192),
  # layers_per_block=2, norm_num_groups=16, AttnDownBlock2D 5th, AttnUpBlock2D 2nd).
  model = UNet(PRESETS["unet48"], out_channels=3, layers_per_block=2, attention_levels=(4,),
               norm_groups=16)
  assert count(model, (32, 32, 3)) == 16_012_419


def test_class_embedding_adds_one_null_class():
  kw = dict(channels=(16, 32), out_channels=1, attention_levels=(1,), norm_groups=8)
  base = count(UNet(**kw), (8, 8, 1))
  cond = count(UNet(**kw, num_classes=10), (8, 8, 1), labels=jnp.zeros((1,), jnp.int32))
  assert cond - base == 11 * 4 * 16


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_forward_shapes_and_labels_matter(dtype):
  model = UNet((16, 32), out_channels=1, attention_levels=(1,), norm_groups=8,
               num_classes=10, dtype=dtype)
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
  t = jnp.array([0, 10, 500, 999])
  y = jnp.array([0, 1, 2, 10])
  init = jax.jit(model.init, compiler_options=xla_flags.once_compiler_options("cpu"))
  params = init(jax.random.key(1), x, t, y)
  apply = jax.jit(model.apply)
  out = apply(params, x, t, y)
  assert out.shape == x.shape and out.dtype == jnp.float32
  assert np.isfinite(np.asarray(out)).all()
  # Perturb params so the (zero-ish at init) label path is visible, then check it is used.
  params = jax.tree.map(lambda p: p + 0.05, params)
  a = apply(params, x, t, y)
  b = apply(params, x, t, jnp.array([5, 5, 5, 5]))
  assert float(jnp.abs(a - b).max()) > 1e-3


def test_timestep_embedding_matches_formula():
  t = jnp.array([0.0, 3.0, 999.0])
  emb = np.asarray(timestep_embedding(t, 8))
  freqs = np.exp(-np.log(10000.0) * np.arange(4) / 4)
  args = np.asarray(t)[:, None] * freqs
  np.testing.assert_allclose(emb, np.concatenate([np.cos(args), np.sin(args)], 1), atol=1e-5)
