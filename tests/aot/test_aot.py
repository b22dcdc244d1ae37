"""Programs of the loop compiled for TPU and GPU targets without the chips (scripts/plan.py):
memory from the shardings, collectives, the does-not-fit line, FLOPs against a count made
from the layers' shapes."""

import functools
import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from collapse_jax import config_lib, sharding
from collapse_jax.models.unet import AttentionBlock, unet_from_config
from collapse_jax.plan import analyze, calibration, hlo, programs, report, targets
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


# Tests that share a cached compilation (planned, _train_on) run on one xdist worker
# (`--dist loadgroup`), so no program is compiled twice.
# make test compiles the TPU plan; the GPU plan and the GPU train steps run with the slow
# tests (make test-slow, CI).
ON_PLAN = [pytest.param(TPU, marks=pytest.mark.xdist_group(f"plan {TPU}")),
           pytest.param(GPU, marks=[pytest.mark.xdist_group(f"plan {GPU}"), pytest.mark.slow])]


@pytest.mark.parametrize("target", ON_PLAN)
def test_every_program_compiles_and_is_bounded(target):
  plan = planned(target)
  assert plan["errors"] == []
  names = [p["name"] for p in plan["programs"]]
  assert names[:2] == ["train step", "sampler (ddim, 50 steps)"]
  assert {"entropy pixels (pool)", "entropy pixels (train)", "collapse time pixels",
          "greedy selection", "threshold selection"} <= set(names)
  assert plan["devices"] == targets.parse(target).num_devices
  for p in plan["programs"]:
    assert p["compile_s"] > 0 and p["memory"]["total"] > 0, p["name"]
    assert p["flops"] > 0 and p["bytes"] > 0 and p["bound_s"] > 0, p["name"]
  assert plan["fits"] and plan["fit_line"] == ""
  # The generation runs the train step num_steps times: at least that long.
  train = plan["programs"][0]
  assert plan["bound"]["generation_s"] >= train["calls"] * train["bound_s"] > 0
  assert "| train step | 1600 |" in report.markdown(plan)


@pytest.mark.parametrize("target", ON_PLAN)
def test_kernels_keep_full_float32_in_the_optimized_hlo(target):
  """The entropy and selection programs' products stay exact through the target's compiler
  (float32 at HIGHEST, uint8 pixels as bfloat16), and no device holds their whole pool; the
  UNet's run at the backend's default by design (and show the count works)."""
  progs = {p["name"]: p for p in planned(target)["programs"]}
  for name in ("entropy pixels (pool)", "entropy pixels (train)", "greedy selection",
               "threshold selection"):
    assert progs[name]["reduced_products"] == 0, name
    # The set (512 or 256 rows of 8x8 uint8 pixels) split over every device, whole on none
    # (the TPU lays 64 bytes out in a 128-byte tile row: a share takes twice its bytes).
    rows = 256 if "train" in name else 512
    devices = planned(target)["devices"]
    assert rows * 64 // devices <= progs[name]["memory"]["argument"] < rows * 64, name
  # The collapse time's kernel: noise (float32) against rows, at HIGHEST too.
  assert progs["collapse time pixels"]["reduced_products"] == 0
  assert progs["train step"]["reduced_products"] > 0
  assert "float32 products at the target's reduced default precision" in report.markdown(
      planned(target))


@pytest.mark.slow
def test_feature_extractors_keep_full_float32_on_tpu():
  """DINOv2, the learned space's CNN and Inception at eval.dtype=float32, compiled for a TPU
  slice: no float32 product of theirs is left at the TPU's one-pass bf16 default."""
  c = small_config()
  c.features, c.features_weights, c.eval.fid_weights = "dinov2", "weights", "weights"
  c.loop.n_train, c.loop.pool_factor, c.eval.batch_size = 8, 1, 8
  t = targets.parse(TPU)
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1}, targets.devices(t))
  progs = programs.encoder_programs(c, mesh)
  assert [p.name for p in progs] == ["dinov2 features (pool)", "learned features (pool)",
                                     "inception features (pool)"]
  for p in progs:
    text = p.fn.lower(*p.args).compile().as_text()
    assert "operand_precision={highest,highest}" in text, p.name
    assert hlo.reduced_products(text) == [], p.name


@pytest.mark.parametrize("target", ON_PLAN)
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
  return prog, analyze.memory(analyze.compile_one(prog)[1])


def _shard_bytes(tree):
  return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
             for x in jax.tree.leaves(tree))


@pytest.mark.slow
@pytest.mark.xdist_group("train on gpu")
@pytest.mark.parametrize("fsdp", [1, 4])
def test_argument_bytes_are_the_sharded_state_and_batch(fsdp):
  prog, mem = _train_on(GPU, fsdp)
  state, batch, key, schedule = prog.args
  # The loss reads alphas_cumprod, not betas (jit drops unused arguments); a threefry key
  # is 2 x uint32.
  expected = _shard_bytes((state, batch, schedule.alphas_cumprod)) + 8
  assert mem["argument"] == expected


@pytest.mark.slow
@pytest.mark.xdist_group("train on gpu")
def test_fsdp_divides_the_parameter_bytes_per_device():
  full, f1 = _train_on(GPU, 1)
  _, f4 = _train_on(GPU, 4)
  params = _shard_bytes(full.args[0])
  split = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(full.args[0])
              if x.size >= sharding.MIN_SHARD_SIZE)
  # The split leaves shrink by 4; the small ones (biases, norms) stay whole.
  assert f1["argument"] - f4["argument"] == pytest.approx(split * 3 / 4, rel=0.02)
  assert f4["argument"] < 0.5 * params


@pytest.mark.slow
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


def _taps(n: int, k: int, stride: int, pad: int) -> int:
  """Kernel taps that land inside an input of length n, summed over the output positions
  (taps on the zero padding multiply nothing, and XLA does not count them)."""
  out = (n + 2 * pad - k) // stride + 1
  return sum(0 <= o * stride - pad + j < n for o in range(out) for j in range(k))


def layer_flops(model, shape, batch):
  """Forward FLOPs of the UNet's products counted from its layers' shapes, not from XLA:
  2 x the multiply-adds of every Conv (over the taps inside the image) and Dense, and of the
  two attention products (q.k and p.v: 2 x 2 x b x L^2 x c). Returns (total, the
  FLOPs of the layers whose input gradient the step never needs: the first convolution
  and the first time-embedding Dense, which read the data and the sinusoids)."""
  counts, first = [], {}  # first: layer type -> FLOPs of its first call

  def count(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    mod, x = context.module, args[0] if args else None
    if context.method_name != "__call__":
      return out
    if isinstance(mod, nn.Conv):
      (kh, kw), pad = mod.kernel_size, mod.padding
      sh, sw = (mod.strides,) * 2 if isinstance(mod.strides, int) else mod.strides or (1, 1)
      taps = _taps(x.shape[1], kh, sh, pad) * _taps(x.shape[2], kw, sw, pad)
      f = 2 * x.shape[0] * taps * x.shape[-1] * mod.features
    elif isinstance(mod, nn.Dense):
      f = 2 * math.prod(x.shape[:-1]) * x.shape[-1] * mod.features
    elif isinstance(mod, AttentionBlock):
      b, h, w, c = x.shape
      f = 2 * 2 * b * (h * w) ** 2 * c
    else:
      return out
    counts.append(f)
    if isinstance(mod, nn.Conv | nn.Dense):
      first.setdefault(type(mod), f)
    return out

  x = jnp.zeros((batch, *shape), jnp.float32)
  t = jnp.zeros((batch,), jnp.int32)
  with nn.intercept_methods(count):
    jax.eval_shape(lambda: model.init(jax.random.key(0), x, t))
  return sum(counts), sum(first.values())


@pytest.mark.xdist_group(f"plan {TPU}")
def test_plan_flops_agree_with_a_count_from_the_layer_shapes():
  """The plan's train-step FLOPs (XLA's count of the compiled program, per device) against
  3 x the forward products counted from the layers (forward, input gradient, weight
  gradient), less the input gradients the step never computes. What the layer count leaves
  out is elementwise work (norms, swish, softmax, AdamW, EMA): the plan may exceed it by
  that share, measured at 1.4% here, and never fall below it."""
  c = small_config()
  plan = planned(TPU)
  shape, _ = programs.data_shape(c)
  model = unet_from_config(c.model, shape, 0).clone(cpu_kernels=False)
  forward, no_input_grad = layer_flops(model, shape, c.train.batch_size)
  expected = 3 * forward - no_input_grad
  got = plan["programs"][0]["flops"] * plan["devices"]
  assert expected <= got <= 1.10 * expected, (got / expected, got, expected)


def test_target_names_and_bad_ones():
  assert targets.parse("tpu:v5e:16x16").num_devices == 256
  assert targets.parse("tpu:v5e:16x16").hosts == 32
  assert targets.parse("gpu:h200:2x8").hosts == 2
  for bad in ("tpu:v5e:4", "tpu:v9:2x2", "gpu:h100:1x9", "tpu:v4:2x2", "quantum"):
    with pytest.raises(config_lib.ConfigError, match="--target"):
      targets.parse(bad)


@pytest.mark.slow
def test_ddpm_cifar10_on_a_v3_8_against_its_published_speed():
  """Ho et al. 2020's CIFAR-10 DDPM (35.7M parameters, batch 128) trained at 21 steps/s on
  a TPU v3-8. The planner's bound for that step on `tpu:v3:2x2` (8 TensorCores) must be
  faster than the measurement (a lower bound), and equal plan/calibration.py's constant
  (from which plans take their expected times) within 10%."""
  config = calibration.ddpm_cifar10(
      sweep.load_config(os.path.join(ROOT, "configs", "cifar10.py")))
  model = unet_from_config(config.model, (32, 32, 3), 0)
  params = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,), jnp.int32)))
  n = sum(x.size for x in jax.tree.leaves(params))
  assert abs(n / 1e6 - 35.7) < 0.1, n  # the paper's count: the same model
  target = targets.parse(calibration.TARGET)
  mesh = sharding.make_mesh(dict(config.mesh), targets.devices(target))
  assert mesh.size == 8
  train = programs.diffusion_programs(config, mesh, cpu_kernels=False)[0]
  cpu_mesh = sharding.make_mesh({"data": 1, "fsdp": 1}, jax.devices("cpu")[:1])
  cpu_train = programs.diffusion_programs(config, cpu_mesh, cpu_kernels=False, round_to=8)[0]
  peaks, _ = report._peaks(target, mesh.size)
  r = analyze.analyze(train, cpu_train, target, mesh.size, peaks)
  assert not r.error, r.error
  print(f"bound {r.bound_s * 1e3:.2f} ms/step = {1 / r.bound_s:.1f} steps/s vs measured "
        f"{calibration.MEASURED_STEPS_PER_S} steps/s: efficiency "
        f"{calibration.MEASURED_STEPS_PER_S * r.bound_s:.2f} (compute {r.compute_s * 1e3:.2f} "
        f"ms, memory {r.memory_s * 1e3:.2f} ms, collectives {r.comm_s * 1e3:.2f} ms)")
  assert 1 / r.bound_s > calibration.MEASURED_STEPS_PER_S  # a bound the real run never beat
  assert abs(r.bound_s / calibration.BOUND_STEP_S - 1) < 0.10, r.bound_s


@pytest.mark.slow
@pytest.mark.parametrize("target_name", [TPU, GPU])
def test_the_k_step_train_program_compiles_for_tpu_and_gpu(target_name):
  """train.steps_per_call=10 on accelerators: one call runs 10 steps over the device-resident
  uint8 training set; compiled for a v5e slice and an H100 node (no chip)."""
  config = small_config()
  target = targets.parse(target_name)
  mesh = sharding.make_mesh({"data": -1, "fsdp": 1}, targets.devices(target))
  prog = programs.train_loop_program(config, mesh, 10)
  _, compiled, seconds = analyze.compile_one(prog)
  m = analyze.memory(compiled)
  text = compiled.as_text()
  print(f"{target_name}: compiled in {seconds:.1f} s, {m['total'] / 2**20:.1f} MiB per device")
  assert m["total"] > 0 and "while" in text  # the scan stays a loop on the device


@pytest.mark.slow
@pytest.mark.xdist_group(f"plan {GPU}")  # shares the cached GPU plan
def test_gpu_bytes_come_from_the_kernels_xla_emits():
  """On GPU the bytes are each kernel's operands and results in the optimized HLO: a
  matmul fused with its epilogue reads two 4 MiB matrices and writes one. The train step's
  GPU row then stands beside its TPU row (printed), no longer on the arguments-plus-outputs
  floor."""
  target = targets.parse(GPU)
  mesh = sharding.make_mesh({"data": 1, "fsdp": 1}, targets.devices(target)[:1])
  x = jax.ShapeDtypeStruct((1024, 1024), jnp.float32, sharding=sharding.replicated(mesh))
  compiled = jax.jit(lambda a, b: jnp.tanh(a @ b) + 1.0).lower(x, x).compile()
  assert hlo.kernel_bytes(compiled.as_text()) == 3 * 4 * 2**20
  rows = {}
  for name in (TPU, GPU):
    r = planned(name)["programs"][0]
    rows[name] = r
    print(f"{name}: train step {r['flops'] / 1e9:.3g} GFLOP, {r['bytes'] / 1e9:.3g} GB "
          f"({r['bytes_source']}), bound {r['bound_s'] * 1e3:.3g} ms per device")
  assert rows[GPU]["bytes_source"] == "gpu kernels' operands and results"
  assert rows[GPU]["bytes"] > 0
