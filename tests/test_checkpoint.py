"""A damaged newest checkpoint is passed over for the newest intact one and moved aside;
a checkpoint of another shape (a changed config) is an error, never a silent restart."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import checkpoint
from collapse_jax.errors import WorkdirError
from collapse_jax.study import sweep


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


def _tear_newest(directory):
  """Truncates every data file of the newest step in an orbax directory; returns it."""
  steps = sorted(int(s) for s in os.listdir(directory) if s.isdigit())
  newest = os.path.join(directory, str(steps[-1]))
  files = [os.path.join(d, f) for d, _, fs in os.walk(newest) for f in fs
           if os.path.getsize(os.path.join(d, f)) > 0]
  for path in files:
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  return steps[-1], len(steps)


def _config(name, variant):
  """get_config(variant) of configs/<name>.py."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return sweep.load_config(os.path.join(root, "configs", f"{name}.py:{variant}"))


def test_a_torn_newest_loop_state_resumes_from_the_older_one_to_identical_metrics(tmp_path):
  from collapse_jax.loop.recursive import run_recursive
  from collapse_jax.metrics.writer import read_jsonl

  config = _config("theory", "gaussian")
  config.loop.generations, config.loop.pictures = 3, False
  timeless = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]

  run_recursive(config, str(tmp_path / "run"))
  want = timeless(read_jsonl(str(tmp_path / "run" / "metrics.jsonl")))
  torn, kept = _tear_newest(tmp_path / "run" / "loop_state")
  assert kept >= 2
  rows = run_recursive(config, str(tmp_path / "run"))
  assert len(rows) == 3
  assert timeless(read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))) == want
  aside = os.listdir(tmp_path / "run" / "loop_state.damaged")
  assert [a.split("-")[0] for a in aside] == [str(torn)]


@pytest.mark.slow
def test_a_torn_newest_model_checkpoint_resumes_from_the_older_one(tmp_path):
  from collapse_jax.diffusion.fit import fit
  from collapse_jax.models.unet import unet_from_config
  from collapse_jax.sharding import make_mesh, to_host

  config = _config("digits", "smoke")
  config.train.update(num_steps=40, checkpoint_every=20, log_every=20, batch_size=16)
  images = np.random.default_rng(0).uniform(-1, 1, (64, 8, 8, 1)).astype(np.float32)
  mesh = make_mesh(config.mesh)
  model = unet_from_config(config.model, (8, 8, 1), 0)

  def train(workdir):
    with jax.set_mesh(mesh):
      state = fit(config, {"image": images}, str(workdir), mesh, model, jax.random.key(1))
    return jax.tree.map(to_host, state.params)

  want = train(tmp_path / "a")
  torn, kept = _tear_newest(tmp_path / "a" / "checkpoints")
  assert (torn, kept) == (40, 2)
  got = train(tmp_path / "a")  # resumes from step 20 and trains 20 steps again
  jax.tree.map(np.testing.assert_array_equal, got, want)
  assert os.listdir(tmp_path / "a" / "checkpoints.damaged")[0].startswith("40-")
