"""The sharded train step on 8 fake devices equals the same step on 1 device."""

import functools

import jax
import ml_collections
import numpy as np
import pytest

from collapse_jax import sharding
from collapse_jax.diffusion.schedule import linear_schedule
from collapse_jax.models.unet import UNet
from collapse_jax.train_state import make_optimizer
from collapse_jax.train_step import compiled_train_step, create_state

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


@pytest.mark.parametrize("mesh_shape", [{"data": 8, "fsdp": 1}, {"data": 4, "fsdp": 2},
                                        {"data": 2, "fsdp": 4}])
def test_sharded_step_equals_single_device(devices, mesh_shape):
  many = sharding.make_mesh(mesh_shape, devices)
  # Large params really are split over fsdp on the multi-device mesh.
  if mesh_shape["fsdp"] > 1:
    kernel = next(x for x in jax.tree.leaves(
        sharding.tree_shardings(jax.eval_shape(lambda: np.zeros((64, 64, 3, 3))), many,
                                min_size=1)))
    assert "fsdp" in str(kernel.spec)
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
  assert sharding.param_spec((3, 3, 64, 128), 2, 16) == jax.sharding.PartitionSpec(
      None, None, None, "fsdp")
  assert sharding.param_spec((3, 3, 64, 128), 1, 16) == jax.sharding.PartitionSpec()
  assert sharding.param_spec((7,), 2, 1) == jax.sharding.PartitionSpec()
  assert sharding.param_spec((4, 4), 2, 10**6) == jax.sharding.PartitionSpec()


def test_mesh_errors(devices):
  with pytest.raises(ValueError, match="config.mesh"):
    sharding.make_mesh({"data": 3, "fsdp": 1}, devices)
  with pytest.raises(ValueError, match="unknown axes"):
    sharding.make_mesh({"model": 2}, devices)
  assert dict(sharding.make_mesh({"data": -1, "fsdp": 2}, devices).shape) == {"data": 4, "fsdp": 2}
