"""The sharded train step on 8 fake devices equals the same step on 1 device."""

import functools

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from collapse_jax import sharding
from collapse_jax.diffusion.schedule import linear_schedule
from collapse_jax.diffusion.state import make_optimizer
from collapse_jax.diffusion.step import (
  compiled_train_step,
  create_state,
  init_state,
  state_shardings,
)
from collapse_jax.models.unet import PRESETS, UNet

OPTIM = ml_collections.ConfigDict(dict(
    lr=1e-3, b1=0.95, b2=0.999, eps=1e-8, weight_decay=1e-6, warmup_steps=2, grad_clip=1.0))


def run_steps(mesh, model, batches, num_steps=3, ema_decay=0.99):
  tx = make_optimizer(OPTIM, 10)
  shape = batches[0]["image"].shape[1:]
  step = compiled_train_step(mesh, model, tx, shape, ema_decay, 0.1)
  with jax.set_mesh(mesh):
    state = create_state(jax.random.key(0), mesh, model, tx, shape, ema_decay > 0)
    losses = []
    for i in range(num_steps):
      state, metrics = step(state, sharding.shard_batch(batches[i], mesh), jax.random.key(1),
                            linear_schedule(1000))
      losses.append(float(metrics["loss"]))
  return losses, jax.device_get(state)


MODEL = UNet((16, 32), out_channels=1, attention_levels=(1,), norm_groups=8, num_classes=10)
_rng = np.random.default_rng(0)
BATCHES = [
    {"image": _rng.uniform(-1, 1, (16, 8, 8, 1)).astype(np.float32),
     "label": _rng.integers(0, 10, 16).astype(np.int32)}
    for _ in range(3)
]


@functools.cache
def single_device_run():
  one = sharding.make_mesh({"data": 1, "fsdp": 1}, jax.devices()[:1])
  return run_steps(one, MODEL, BATCHES)


def fsdp_leaves(mesh):
  tx = make_optimizer(OPTIM, 10)
  shardings = state_shardings(mesh, MODEL, tx, (8, 8, 1), True)
  return [sharding.path_str(p) for p, s in jax.tree_util.tree_leaves_with_path(shardings)
          if "fsdp" in str(s.spec)]


@pytest.mark.parametrize("mesh_shape", [{"data": 4, "fsdp": 2}, {"data": 2, "fsdp": 4}])
def test_sharded_step_equals_single_device(devices, mesh_shape):
  many = sharding.make_mesh(mesh_shape, devices)
  split = fsdp_leaves(many)
  # The large kernels really are split, and so are their EMA and both Adam moments.
  names = {p.removeprefix("params/") for p in split if p.startswith("params/")}
  assert names
  for prefix in ("ema_params/", "opt_state/1/0/mu/", "opt_state/1/0/nu/"):
    assert names <= {p.removeprefix(prefix) for p in split if p.startswith(prefix)}, prefix
  losses1, state1 = single_device_run()
  losses8, state8 = run_steps(many, MODEL, BATCHES)
  np.testing.assert_allclose(losses1, losses8, rtol=1e-5)
  assert losses1[0] > 0
  leaves1 = jax.tree_util.tree_leaves_with_path(state1)
  leaves8 = jax.tree_util.tree_leaves_with_path(state8)
  for (path, a), (_, b) in zip(leaves1, leaves8, strict=True):
    path = jax.tree_util.keystr(path)
    if "['key']['bias']" in path:
      # The attention key bias has an exactly zero gradient (softmax is shift-invariant);
      # Adam turns the float noise in it into +-lr steps, so it is noise on any device.
      np.testing.assert_array_less(np.abs(np.asarray(a)), 3 * 3 * OPTIM.lr)
      continue
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5, err_msg=path)


def test_param_spec_rules():
  mesh_shape = {"data": 2, "fsdp": 4}
  spec = lambda name, shape, **kw: sharding.param_spec(name, shape, mesh_shape, **kw)
  assert spec("params/Conv_3/kernel", (3, 3, 64, 128)) == P(None, None, None, "fsdp")
  assert spec("opt_state/1/0/mu/up/Dense_0/kernel", (256, 512)) == P(None, "fsdp")
  assert spec("params/Conv_3/kernel", (3, 3, 64, 128), min_size=10**6) == P()
  assert spec("params/GroupNorm_0/scale", (4096, 8)) == P()
  # An axis that does not divide the dimension leaves it whole (the 3-channel output conv).
  assert spec("params/Conv_9/kernel", (3, 3, 8192, 3)) == P()
  assert sharding.param_spec("params/Conv_3/kernel", (3, 3, 64, 128), {"data": 8, "fsdp": 1}) \
      == P()
  with pytest.raises(ValueError, match="sharding rule"):
    spec("params/Dense_0/kernel", (2**15,), rules=((r"Dense", P(None, "fsdp")),))


def test_rule_table_splits_unet48_state_over_fsdp(devices):
  """UNet48's parameters and Adam moments hold ~1/fsdp of their bytes on each device."""
  model = UNet(PRESETS["unet48"], out_channels=3, attention_levels=(4,), norm_groups=16)
  tx = make_optimizer(OPTIM, 10)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 4}, devices)
  shardings = state_shardings(mesh, model, tx, (32, 32, 3), False)
  abstract = jax.eval_shape(
      lambda r: init_state(r, model=model, tx=tx, image_shape=(32, 32, 3), ema=False),
      jax.random.key(0))
  total = per_device = 0
  for (path, x), s in zip(jax.tree_util.tree_leaves_with_path(abstract),
                          jax.tree.leaves(shardings), strict=True):
    name, shard = sharding.path_str(path), s.shard_shape(x.shape)
    total += x.size
    per_device += np.prod(shard)
    if x.size >= 2**14 and name.endswith("/kernel") and x.shape[-1] % 4 == 0:
      assert shard[-1] == x.shape[-1] // 4, name
    if "GroupNorm" in name or name.endswith("/bias"):
      assert shard == x.shape, name
  assert total > 3 * 12e6  # params + two moments of a ~12M-parameter model
  assert per_device / total < 0.27, per_device / total


def test_fsdp_step_keeps_activations_batch_split(devices):
  """With fsdp-split kernels the compiled step only gathers weights: no all-to-all.

  Without `constrain_batch` in the UNet, XLA splits activations by channel after
  fsdp-split convs and the step compiles to hundreds of all-to-alls.
  """
  mesh = sharding.make_mesh({"data": 2, "fsdp": 4}, devices)
  tx = make_optimizer(OPTIM, 10)
  model = UNet((32, 64), out_channels=1, attention_levels=(1,), norm_groups=8, num_classes=10)
  step = compiled_train_step(mesh, model, tx, (8, 8, 1), 0.0, 0.1)
  state = jax.eval_shape(
      lambda r: init_state(r, model=model, tx=tx, image_shape=(8, 8, 1), ema=False),
      jax.random.key(0))
  state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state,
                       state_shardings(mesh, model, tx, (8, 8, 1), False))
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding.batch_sharding(mesh))
           for k, v in BATCHES[0].items()}
  hlo = step.lower(state, batch, jax.random.key(1), linear_schedule(1000)).compile().as_text()
  assert "all-gather" in hlo
  assert "all-to-all" not in hlo


def test_mesh_errors(devices):
  with pytest.raises(ValueError, match="config.mesh"):
    sharding.make_mesh({"data": 3, "fsdp": 1}, devices)
  with pytest.raises(ValueError, match="unknown axes"):
    sharding.make_mesh({"model": 2}, devices)
  assert dict(sharding.make_mesh({"data": -1, "fsdp": 2}, devices).shape) == {"data": 4, "fsdp": 2}


@pytest.mark.slow
def test_cpu_kernels_in_the_sharded_step_equal_native_single_device(devices):
  """The CPU's matmul convolution (its 2x2 level) and GroupNorm gradient, inside the step on
  a (4, 2) mesh, train as XLA's native convolution and autodiff'd GroupNorm on 1 device."""
  kw = dict(channels=(16, 32, 32), out_channels=1, attention_levels=(2,), norm_groups=8,
            num_classes=10)
  one = sharding.make_mesh({"data": 1, "fsdp": 1}, jax.devices()[:1])
  many = sharding.make_mesh({"data": 4, "fsdp": 2}, devices)
  losses1, state1 = run_steps(one, UNet(**kw, cpu_kernels=False), BATCHES)
  losses8, state8 = run_steps(many, UNet(**kw), BATCHES)
  np.testing.assert_allclose(losses1, losses8, rtol=1e-5)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(state1.params),
                          jax.tree.leaves(state8.params), strict=True):
    if "['key']['bias']" in jax.tree_util.keystr(path):
      continue  # a zero gradient: noise on any device (see above)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5,
                               err_msg=jax.tree_util.keystr(path))
