"""Programs of the loop compiled for TPU and GPU targets without the chips (scripts/plan.py):
memory from the shardings, collectives, the does-not-fit line, FLOPs against XLA's CPU count."""

import functools
import math
import os

import jax
import pytest

from collapse_jax import config_lib, sharding
from collapse_jax.diffusion.state import make_optimizer
from collapse_jax.diffusion.step import train_step
from collapse_jax.models.unet import unet_from_config
from collapse_jax.plan import analyze, programs, report, targets
from collapse_jax.study import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIGITS = os.path.join(ROOT, "configs", "digits.py")

TPU, GPU = "tpu:v5e:2x2", "gpu:h100:1x8"


def small_config(**train):
  """A UNet small enough to compile in seconds, wide enough (64 channels) that its kernels
  are split by fsdp (sharding.MIN_SHARD_SIZE)."""
  c = sweep.load_config(DIGITS)
  c.model.channels = (64, 64)
  c.model.attention_levels = (1,)
  c.model.norm_groups = 16
  c.loop.n_train = 256
  c.loop.pool_factor = 2
  c.loop.selection = "greedy"
  c.sample.batch_size = 64
  c.train.batch_size = 64
  for k, v in train.items():
    setattr(c.train, k, v)
  return c


@functools.cache
def planned(target):
  return report.make_plan(small_config(), target)


@pytest.mark.parametrize("target", [TPU, GPU])
def test_every_program_compiles_and_is_bounded(target):
  plan = planned(target)
  assert plan["errors"] == []
  names = [p["name"] for p in plan["programs"]]
  assert names[:2] == ["train step", "sampler (ddim, 50 steps)"]
  assert {"entropy pixels (pool)", "entropy pixels (train)", "greedy selection",
          "threshold selection"} <= set(names)
  assert plan["devices"] == targets.parse(target).num_devices
  for p in plan["programs"]:
    assert p["compile_s"] > 0 and p["memory"]["total"] > 0, p["name"]
    assert p["flops"] > 0 and p["bytes"] > 0 and p["bound_s"] > 0, p["name"]
  assert plan["fits"] and plan["fit_line"] == ""
  gen = sum(p["calls"] * p["bound_s"] for p in plan["programs"] if p["used"])
  assert plan["bound"]["generation_s"] == pytest.approx(gen)
  assert "| train step | 1600 |" in report.markdown(plan)


@pytest.mark.parametrize("target", [TPU, GPU])
def test_train_step_has_no_all_to_all_and_reduces_its_gradients(target):
  train = planned(target)["programs"][0]
  assert "all-to-all" not in train["collectives"]
  assert train["collectives"]["all-reduce"]["count"] >= 1


@functools.cache
def _train_on(target, fsdp):
  t = targets.parse(target)
  devs = targets.devices(t)
  mesh = sharding.make_mesh({"data": len(devs) // fsdp, "fsdp": fsdp}, devs)
  prog = programs.diffusion_programs(small_config(), mesh)[0]
  return prog, analyze.memory(analyze.compile_one(prog)[0])


def _shard_bytes(tree):
  return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
             for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("fsdp", [1, 4])
def test_argument_bytes_are_the_sharded_state_and_batch(fsdp):
  prog, mem = _train_on(GPU, fsdp)
  state, batch, key, schedule = prog.args
  # The loss reads alphas_cumprod, not betas (jit drops unused arguments); a threefry key
  # is 2 x uint32.
  expected = _shard_bytes((state, batch, schedule.alphas_cumprod)) + 8
  assert mem["argument"] == expected


def test_fsdp_divides_the_parameter_bytes_per_device():
  full, f1 = _train_on(GPU, 1)
  _, f4 = _train_on(GPU, 4)
  params = _shard_bytes(full.args[0])
  split = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(full.args[0])
              if x.size >= sharding.MIN_SHARD_SIZE)
  # The split leaves shrink by 4; the small ones (biases, norms) stay whole.
  assert f1["argument"] - f4["argument"] == pytest.approx(split * 3 / 4, rel=0.02)
  assert f4["argument"] < 0.5 * params


def test_a_batch_beyond_hbm_gets_the_does_not_fit_line():
  c = small_config(batch_size=2**19)
  c.data.name = "cifar10"  # 32x32x3: activations of 2^18 images per GPU exceed 80 GiB
  c.model.channels, c.model.attention_levels, c.model.norm_groups = (16, 16), (), 8
  t = targets.parse("gpu:h100:1x2")
  devs = targets.devices(t)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 1}, devs)
  prog = programs.diffusion_programs(c, mesh)[0]
  cpu = programs.diffusion_programs(
      c, sharding.make_mesh({"data": 1, "fsdp": 1}, jax.devices("cpu")[:1]), False)[0]
  peaks = (t.chip.peak_flops, t.chip.hbm_bw)
  first = analyze.analyze(prog, cpu, t, 2, peaks)
  assert first.memory["total"] > t.chip.hbm_bytes
  _, _, line = report._fit_train(c, t, devs, t.chip.hbm_bytes, peaks, cpu, first,
                                 report._batch_bytes(prog))
  # fsdp splits the parameters, not the activations: only a smaller batch fits.
  assert line.startswith(f"train step needs {first.memory['total'] / 2**30:.1f} GiB per "
                         "device of 80 GiB on NVIDIA H100 80GB HBM3: use batch <= "), line
  limit = int(line.split("batch <= ")[1])
  assert 2 <= limit < 2**19
  per_example = first.memory["temp"] / 2**18
  assert limit / 2 * per_example < t.chip.hbm_bytes


def test_plan_flops_equal_xla_cpu_cost_analysis_of_the_step():
  c = small_config()
  plan = planned(GPU)
  shape, _ = programs.data_shape(c)
  model = unet_from_config(c.model, shape, 0).clone(cpu_kernels=False)
  tx = make_optimizer(c.optim, c.train.num_steps)
  step = functools.partial(train_step, model=model, tx=tx, ema_decay=c.train.ema_decay,
                           label_dropout=c.train.label_dropout)
  args = [jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), a)
          for a in planned_args(c)]
  flops = jax.jit(step).lower(*args).cost_analysis()["flops"]
  assert plan["programs"][0]["flops"] * 8 == pytest.approx(flops, rel=1e-9)


def planned_args(c):
  mesh = sharding.make_mesh({"data": 1, "fsdp": 1}, jax.devices("cpu")[:1])
  return programs.diffusion_programs(c, mesh, False)[0].args


def test_target_names_and_bad_ones():
  assert targets.parse("tpu:v5e:16x16").num_devices == 256
  assert targets.parse("tpu:v5e:16x16").hosts == 32
  assert targets.parse("gpu:h200:2x8").hosts == 2
  for bad in ("tpu:v5e:4", "tpu:v9:2x2", "gpu:h100:1x9", "tpu:v4:2x2", "quantum"):
    with pytest.raises(config_lib.ConfigError, match="--target"):
      targets.parse(bad)
