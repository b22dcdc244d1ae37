"""The training loop: overfitting a small set, NaN errors, kill-and-resume."""

import glob
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from collapse_jax import config_lib
from collapse_jax.data import load_digits, make_batch_dataset
from collapse_jax.diffusion.fit import fit, throughput_model
from collapse_jax.diffusion.job import train_and_evaluate
from collapse_jax.diffusion.state import make_optimizer
from collapse_jax.diffusion.step import init_state
from collapse_jax.metrics.writer import read_jsonl
from collapse_jax.models.unet import unet_from_config
from collapse_jax.sharding import make_mesh, put_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "configs"))
import digits as digits_config  # noqa: E402


def smoke_config(**train):
  config = digits_config.get_config("smoke")
  config.train.update(train)
  return config


def test_overfits_a_small_subset_and_samples_are_in_range(tmp_path):
  config = smoke_config(num_steps=300, batch_size=32, log_every=50, checkpoint_every=300,
                        profile_steps="100:105")
  config.data.max_examples = 64
  config.model.channels = (16, 32)
  config.optim.lr = 2e-3
  config.optim.warmup_steps = 20
  config.sample.num_images = 32
  samples = train_and_evaluate(config, str(tmp_path))
  losses = [r["loss"] for r in read_jsonl(str(tmp_path / "train.jsonl"))]
  assert len(losses) == 6
  assert losses[-1] < 0.35 * losses[0], losses
  assert samples.shape == (32, 8, 8, 1)
  assert np.isfinite(samples).all() and samples.min() >= -1 and samples.max() <= 1
  assert (tmp_path / "samples.png").exists() and (tmp_path / "train.csv").exists()
  # Throughput as MaxText logs it, and a profiler trace of steps 101-105.
  rows = read_jsonl(str(tmp_path / "train.jsonl"))
  assert all(r["tflops_per_device"] > 0 and 0 < r["mfu"] for r in rows), rows[-1]
  trace = glob.glob(str(tmp_path / "profile" / "plugins" / "profile" / "*" / "*.trace.json.gz"))
  assert trace, os.listdir(tmp_path)
  with gzip.open(trace[0]) as f:
    names = {e.get("name") for e in json.load(f)["traceEvents"]}
  assert "PjitFunction(wrapped)" in names or any("train_step" in str(n) for n in names)


def test_the_logged_step_flops_are_the_planners():
  """fit's FLOPs per step (for TFLOP/s and MFU) equal the planner's count of the same step."""
  from collapse_jax.plan import analyze, programs

  config = smoke_config(batch_size=16)
  mesh = make_mesh({"data": 1, "fsdp": 1}, jax.devices()[:1])
  with jax.set_mesh(mesh):
    train = programs.diffusion_programs(config, mesh)[0]
    flops, devices, peak = throughput_model(train.fn, mesh, *train.args)
  assert flops == analyze.cpu_flops(train) > 0 and devices == 1 and peak > 0


def test_nan_loss_names_the_step(tmp_path):
  config = smoke_config(num_steps=20, batch_size=16, log_every=10, checkpoint_every=100)
  images, _ = load_digits()
  images = images[:64].copy()
  images[37] = np.nan
  dataset = make_batch_dataset(64, 16, config.seed)
  first_bad = next(s for s in range(20) if 37 in np.asarray(dataset[s]))
  mesh = make_mesh(config.mesh)
  model = unet_from_config(config.model, (8, 8, 1), 10)
  with jax.set_mesh(mesh):
    with pytest.raises(FloatingPointError, match=f"at step {first_bad}\\b"):
      fit(config, {"image": images}, str(tmp_path), mesh, model, jax.random.key(0))


def run_train(workdir, *overrides):
  cmd = [sys.executable, os.path.join(REPO, "scripts/train.py"),
         "--config", os.path.join(REPO, "configs/digits.py:smoke"), "--workdir", str(workdir),
         "--config.train.num_steps=200", "--config.train.checkpoint_every=20",
         "--config.train.log_every=10", *overrides]
  # Later runs reuse the first one's compilations (JAX's persistent cache).
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(workdir.parent / "xla_cache"))
  return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=env)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  """An uninterrupted 200-step run, the reference of the interrupted ones."""
  workdir = tmp_path_factory.mktemp("train") / "full"
  full = run_train(workdir)
  assert full.wait(timeout=600) == 0, full.stderr.read()
  return workdir


def wait_for_checkpoint(proc, workdir, step: int) -> None:
  deadline = time.time() + 600
  while not (workdir / "checkpoints" / str(step)).exists() and proc.poll() is None:
    assert time.time() < deadline, "no checkpoint in 600 s"
    time.sleep(0.02)


def assert_same_run(full, resumed) -> None:
  """Same samples, and train.jsonl's logged rows equal to the uninterrupted run's."""
  a = np.load(full / "samples.npz")["images"]
  b = np.load(resumed / "samples.npz")["images"]
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  rows_full = read_jsonl(str(full / "train.jsonl"))
  rows_resumed = read_jsonl(str(resumed / "train.jsonl"))
  assert [r["step"] for r in rows_resumed] == [r["step"] for r in rows_full]
  for key in ("loss", "grad_norm"):
    np.testing.assert_allclose([r[key] for r in rows_resumed], [r[key] for r in rows_full],
                               rtol=1e-5)


@pytest.mark.slow
def test_sigkill_and_resume_equals_uninterrupted_run(tmp_path, full_run):
  killed_dir = tmp_path / "killed"
  proc = run_train(killed_dir)
  wait_for_checkpoint(proc, killed_dir, 60)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
  assert not (killed_dir / "checkpoints" / "200").exists()

  resumed = run_train(killed_dir)
  assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
  assert_same_run(full_run, killed_dir)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1"])
def test_preemption_checkpoints_the_step_and_resumes_to_the_same_run(tmp_path, full_run, sig):
  """SIGTERM (or the configured SLURM signal): the step in flight finishes, a checkpoint of
  it is written, one line says where, exit 75; the same command then ends as an
  uninterrupted run (mid-window: the pending per-step metrics travel in the checkpoint)."""
  workdir = tmp_path / "preempted"
  extra = [f"--config.distributed.preemption_signal={sig}"] if sig != "SIGTERM" else []
  proc = run_train(workdir, *extra)
  wait_for_checkpoint(proc, workdir, 40)
  time.sleep(0.2)  # some steps past the checkpoint, mid-window of log_every
  proc.send_signal(getattr(signal, sig))
  _, err = proc.communicate(timeout=600)
  assert proc.returncode == 75, err
  (line,) = [ln for ln in err.splitlines() if ln.startswith("preempted")]
  print(line)
  step = int(line.split("at training step ")[1].split("/")[0])
  assert 40 < step < 200 and (workdir / "checkpoints" / str(step)).exists(), line
  assert not (workdir / "checkpoints" / "200").exists()

  resumed = run_train(workdir, *extra)
  assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
  assert_same_run(full_run, workdir)


def test_bad_config_values_name_the_field():
  cases = [
      ("train.batch_size", -4, "config.train.batch_size"),
      ("model.norm_groups", 5, "config.model.channels"),
      ("sample.method", "euler", "config.sample.method"),
  ]
  for field, value, expected in cases:
    config = digits_config.get_config()
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=expected.replace(".", r"\.")):
      config_lib.validate(config, (8, 8, 1))
  config = digits_config.get_config()
  config.model.channels = (16, 32, 32, 32, 32)
  with pytest.raises(ValueError, match=r"config\.model\.channels.*8x8"):
    config_lib.validate(config, (8, 8, 1))


def test_cli_rejects_unknown_field(tmp_path):
  proc = run_train(tmp_path, "--config.train.num_stepz=3")
  _, err = proc.communicate(timeout=300)
  assert proc.returncode != 0 and "num_stepz" in err


def test_workdir_of_another_config_is_refused(tmp_path):
  config = digits_config.get_config("smoke")
  config_lib.prepare_workdir(config, str(tmp_path))
  (tmp_path / "marker").write_text("old run")
  config_lib.prepare_workdir(config, str(tmp_path))  # same config: fine, kept
  assert (tmp_path / "marker").exists()
  config.train.num_steps = 7
  with pytest.raises(ValueError, match=r"train\.num_steps \(4 -> 7\).*--overwrite"):
    config_lib.prepare_workdir(config, str(tmp_path))
  config_lib.prepare_workdir(config, str(tmp_path), overwrite=True)
  assert not (tmp_path / "marker").exists()


def test_fit_init_from_starts_at_the_previous_parameters(tmp_path):
  config = smoke_config(num_steps=4, batch_size=16, log_every=2, checkpoint_every=4)
  images, _ = load_digits()
  arrays = {"image": images[:64]}
  mesh = make_mesh(config.mesh)
  model = unet_from_config(config.model, (8, 8, 1), 10)
  with jax.set_mesh(mesh):
    a = fit(config, arrays, str(tmp_path / "a"), mesh, model, jax.random.key(0))
    config.optim.lr = 1e-12  # B barely moves: it must end where A ended
    b = fit(config, arrays, str(tmp_path / "b"), mesh, model, jax.random.key(1),
            init_from=str(tmp_path / "a"))
    c = fit(config, arrays, str(tmp_path / "c"), mesh, model, jax.random.key(1))
  pa, pb, pc = (jax.tree.leaves(jax.device_get(s.params)) for s in (a, b, c))
  for x, y in zip(pa, pb, strict=True):
    np.testing.assert_allclose(x, y, atol=1e-6)
  assert max(float(np.abs(x - z).max()) for x, z in zip(pa, pc, strict=True)) > 1e-3


def _fit_device_set(workdir, steps_per_call, mesh_shape, num_steps=12):
  """fit on a device-resident uint8 training set, as the loop trains; (state, losses)."""
  config = smoke_config(num_steps=num_steps, batch_size=16, log_every=6, checkpoint_every=4,
                        steps_per_call=steps_per_call)
  config.model.channels = (16, 32)
  images, _ = load_digits()
  mesh = make_mesh(mesh_shape, jax.devices()[:mesh_shape["data"] * mesh_shape["fsdp"]])
  arrays = {"image": put_rows(np.round((images[:64] + 1) * 127.5).astype(np.uint8), mesh)}
  model = unet_from_config(config.model, (8, 8, 1), 10)
  with jax.set_mesh(mesh):
    state = fit(config, arrays, str(workdir), mesh, model, jax.random.key(3))
  return state, [r["loss"] for r in read_jsonl(str(workdir / "train.jsonl"))]


def _initial_params(mesh_shape):
  """The parameters fit starts from in `_fit_device_set`."""
  config = smoke_config()
  config.model.channels = (16, 32)
  model = unet_from_config(config.model, (8, 8, 1), 10)
  tx = make_optimizer(config.optim, 12)
  init = init_state(jax.random.split(jax.random.key(3))[0], model=model, tx=tx,
                    image_shape=(8, 8, 1), ema=False)
  return init.params


@pytest.mark.parametrize("mesh_shape", [
    {"data": 1, "fsdp": 1},
    pytest.param({"data": 4, "fsdp": 2}, marks=pytest.mark.slow),  # ~100 s: with CI's slow tests
])
def test_k_steps_per_call_equal_one_step_per_call(tmp_path, mesh_shape):
  """train.steps_per_call=4 (lax.scan over the step; calls end at log and checkpoint steps:
  4, 2, 2, 4) trains the same model as one step per call, and resumes exactly."""
  one, losses_one = _fit_device_set(tmp_path / "one", 1, mesh_shape=mesh_shape)
  four, losses_four = _fit_device_set(tmp_path / "four", 4, mesh_shape=mesh_shape)
  np.testing.assert_allclose(losses_four, losses_one, rtol=1e-5)  # the same batches and noise
  # Adam's first steps map a gradient's rounding to an update of up to lr in size where the
  # gradient is near zero: measure the difference against what training moved.
  flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
  a, b, init = flat(one.params), flat(four.params), flat(_initial_params(mesh_shape))
  rel = float(np.linalg.norm(a - b) / np.linalg.norm(a - init))
  print(f"parameters, 4 vs 1 steps per call: difference / training's change {rel:.2e}; "
        f"losses {np.max(np.abs(np.subtract(losses_four, losses_one))):.2e}")
  assert rel < 0.1  # another batch or noise would differ by about the change itself
  # A run killed after its step-8 checkpoint resumes there and ends where it would have.
  ckpts = tmp_path / "four" / "checkpoints"
  shutil.rmtree(ckpts / "12")
  resumed, _ = _fit_device_set(tmp_path / "four", 4, mesh_shape=mesh_shape)
  for a, b in zip(jax.tree.leaves(four.params), jax.tree.leaves(resumed.params), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
