"""A damaged newest checkpoint is passed over for the newest intact one and moved aside;
a checkpoint of another shape (a changed config) is an error, never a silent restart."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import checkpoint
from collapse_jax.errors import WorkdirError


def _tree(step):
  rng = np.random.default_rng(step)
  return {"w": jnp.asarray(rng.normal(size=(64, 32)), jnp.float32),
          "b": jnp.asarray(rng.normal(size=(32,)), jnp.float32)}


def _saved(tmp_path, steps=(1, 2)):
  manager = checkpoint.make_manager(str(tmp_path / "ckpt"), max_to_keep=3)
  for s in steps:
    checkpoint.save(manager, s, _tree(s), {"step": s})
  manager.wait_until_finished()
  return manager


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      tree)


def _damage(step_dir, how):
  """Tears every data file of a step: truncated to half, or overwritten with zeros."""
  files = [os.path.join(d, f) for d, _, fs in os.walk(step_dir) for f in fs
           if os.path.getsize(os.path.join(d, f)) > 0 and "state" in d]
  assert files
  for path in files:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
      if how == "truncate":
        f.truncate(size // 2)
      else:
        f.write(b"\0" * size)


@pytest.mark.parametrize("how", ["truncate", "zeros"])
def test_damaged_newest_step_falls_back_to_the_intact_one(tmp_path, how):
  manager = _saved(tmp_path)
  _damage(tmp_path / "ckpt" / "2", how)
  fresh = checkpoint.make_manager(str(tmp_path / "ckpt"), max_to_keep=3)
  step, state, meta = checkpoint.restore_latest(fresh, _abstract(_tree(0)))
  assert (step, meta) == (1, {"step": 1})
  for k, v in _tree(1).items():
    np.testing.assert_array_equal(state[k], v)
  assert fresh.all_steps() == [1]
  aside = os.listdir(tmp_path / "ckpt.damaged")
  assert len(aside) == 1 and aside[0].startswith("2-")
  # Training goes on from there: the next save is step 2 again, and it restores.
  checkpoint.save(fresh, 2, _tree(2), {"step": 2})
  fresh.wait_until_finished()
  assert checkpoint.restore_latest(fresh, _abstract(_tree(0)))[0] == 2
  del manager


def test_a_checkpoint_of_another_shape_is_an_error_and_nothing_moves(tmp_path):
  _saved(tmp_path)
  other = {"w": jax.ShapeDtypeStruct((64, 16), jnp.float32),
           "b": jax.ShapeDtypeStruct((16,), jnp.float32)}
  fresh = checkpoint.make_manager(str(tmp_path / "ckpt"), max_to_keep=3)
  with pytest.raises(WorkdirError, match=r"no checkpoint in .*ckpt restores \(newest, step 2"):
    checkpoint.restore_latest(fresh, other)
  assert fresh.all_steps() == [1, 2]
  assert not (tmp_path / "ckpt.damaged").exists()


def test_every_step_damaged_is_an_error(tmp_path):
  _saved(tmp_path, steps=(1,))
  _damage(tmp_path / "ckpt" / "1", "truncate")
  fresh = checkpoint.make_manager(str(tmp_path / "ckpt"), max_to_keep=3)
  with pytest.raises(WorkdirError, match="torn files, or a run of another model"):
    checkpoint.restore_latest(fresh, _abstract(_tree(0)))
  assert fresh.all_steps() == [1]
