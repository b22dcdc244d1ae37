"""The plan's pieces that need no accelerator compiler: collectives read from HLO text, the
ring bounds, target names, and a whole plan for this host's CPU with measured times beside
the bound (tests/aot compiles for TPU and GPU targets)."""

import json
import os

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from collapse_jax import sharding
from collapse_jax.errors import ConfigError
from collapse_jax.plan import hlo, report, targets
from collapse_jax.study import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HLO = """
  %all-reduce.1 = f32[1024]{0} all-reduce(f32[1024]{0} %p), replica_groups=[1,8]<=[8]
  %ag = (f32[16]{0}, f32[128]{0}) all-gather-start(f32[16] %x), replica_groups={{0,1,2,3,4,5,6,7}}
  %ag.done = f32[128]{0} all-gather-done((f32[16]{0}, f32[128]{0}) %ag)
  %rs = bf16[64]{0} reduce-scatter(bf16[256]{0} %y), replica_groups=[2,4]<=[8], dimensions={0}
  %cp = f32[10]{0} collective-permute(f32[10]{0} %z), source_target_pairs={{0,1},{1,0}}
  %t = (f32[8]{0}, bf16[4,4]{1,0}) all-reduce(f32[8]{0} %a, bf16[4,4] %b), replica_groups=[2,4]<=[8]
  %add.3 = f32[1024]{0} add(f32[1024]{0} %all-reduce.1, f32[1024]{0} %all-reduce.1)
"""


def test_collectives_from_hlo_text():
  found = hlo.collectives(HLO, 8)
  assert [(c.kind, c.bytes, c.group) for c in found] == [
      ("all-reduce", 4096, 8),
      ("all-gather", 512, 8),  # the gathered output of the async pair, counted once
      ("reduce-scatter", 512, 4),  # the full input that moves: 4 x 64 bf16
      ("collective-permute", 40, 2),
      ("all-reduce", 32 + 32, 4),  # a combined all-reduce: every operand of its tuple
  ]
  assert hlo.summary(found)["all-reduce"] == {"count": 2, "bytes": 4160}


def test_ring_bounds():
  c = hlo.Collective("all-reduce", 1000, 4)
  assert hlo.seconds(c, 100.0) == pytest.approx(2 * 3 / 4 * 10)
  assert hlo.seconds(hlo.Collective("all-gather", 1000, 4), 100.0) == pytest.approx(7.5)
  assert hlo.seconds(hlo.Collective("all-reduce", 1000, 1), 100.0) == 0.0


def test_collectives_of_a_compiled_psum(devices, rng):
  mesh = sharding.make_mesh({"data": 8, "fsdp": 1}, devices)
  n = int(rng.integers(1, 500))
  f = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, "data"), mesh=mesh,
                            in_specs=P("data"), out_specs=P()))
  x = jax.ShapeDtypeStruct((8 * n,), jnp.float32, sharding=NamedSharding(mesh, P("data")))
  found = hlo.collectives(f.lower(x).compile().as_text(), 8)
  assert [(c.kind, c.bytes, c.group) for c in found] == [("all-reduce", 4 * n, 8)]


def test_target_names():
  t = targets.parse("tpu:v5e:16x16")
  assert (t.num_devices, t.hosts, t.chip.hbm_bytes) == (256, 32, 16 * 2**30)
  assert targets.parse("tpu:v5p:2x2x1").num_devices == 4
  g = targets.parse("gpu:h200:2x8")
  assert (g.num_devices, g.hosts, g.per_host) == (16, 2, 8)
  assert 'core_count: 132' in targets.gpu_target_config(g.chip)
  assert targets.chip_of("NVIDIA H100 80GB HBM3") is targets.CHIPS["h100"]
  assert targets.chip_of("TPU v5 lite") is targets.CHIPS["v5e"]
  assert targets.chip_of("cpu") is None and targets.parse("local").chip is None  # CPU here
  for bad in ("tpu:v5e:4", "tpu:v9:2x2", "gpu:h100:1x9", "tpu:v4:2x2", "quantum"):
    with pytest.raises(ConfigError, match="--target"):
      targets.parse(bad)


def _smoke():
  return sweep.load_config(os.path.join(ROOT, "configs", "digits.py:smoke,greedy"))


def test_cpu_plan_puts_the_measured_times_beside_the_bound(tmp_path, devices):
  plan = report.make_plan(_smoke(), "cpu")
  assert plan["errors"] == [] and plan["fits"] and plan["devices"] == len(devices)
  m = plan["measured"]
  assert m["train_step_s"] > 0 and m["sampler_step_s"] > 0
  assert m["train_bound_over_measured"] == pytest.approx(
      plan["programs"][0]["bound_s"] / m["train_step_s"])
  js, md = report.write(plan, str(tmp_path))
  assert json.load(open(js))["measured"] == m
  text = open(md).read()
  assert "## Measured on this host" in text and "bound / measured = " in text
  assert "greedy selection |" in text and "(not used by this config)" in text


KERNEL_HLO = """
%fused_add (p0: f32[256], p1: f32[256]) -> f32[256] {
  %p0 = f32[256]{0} parameter(0)
  %p1 = f32[256]{0} parameter(1)
  ROOT %add = f32[256]{0} add(%p0, %p1)
}

%body (t: (s32[], f32[64])) -> (s32[], f32[64]) {
  %t = (s32[], f32[64]{0}) parameter(0)
  %i = s32[] get-tuple-element(%t), index=0
  %v = f32[64]{0} get-tuple-element(%t), index=1
  %neg = f32[64]{0} negate(%v)
  ROOT %out = (s32[], f32[64]{0}) tuple(%i, %neg)
}

ENTRY %main (a: f32[256], b: f32[16,16]) -> f32[256] {
  %a = f32[256]{0} parameter(0)
  %b = f32[16,16]{1,0} parameter(1)
  %gemm = (f32[16,16]{1,0}, s8[4096]{0}) custom-call(%b, %b), custom_call_target="__cublas$gemm"
  %w = (s32[], f32[64]{0}) while(%t0), condition=%cond, body=%body
  %sum = f32[256]{0} all-reduce(%a), replica_groups={}, to_apply=%fused_add
  ROOT %f = f32[256]{0} fusion(%a, %sum), kind=kLoop, calls=%fused_add
}
"""


def test_kernel_bytes_of_an_optimized_module():
  """Each kernel's operands and results, by hand: the fusion reads two f32[256] and writes
  one (3 KiB); the cuBLAS call reads two f32[16,16] and writes one, its s8 workspace not
  counted (3 KiB); the while body's negate reads and writes f32[64] (512 B); the
  all-reduce goes over the links, and the fused computation is inside its kernel."""
  assert hlo.kernel_bytes(KERNEL_HLO) == 3 * 1024 + 3 * 1024 + 512


def test_scaling_table_rows_print_expected_hours_and_no_hours_on_a_floor():
  from collapse_jax.plan import calibration, table

  def row(source):
    train = {"memory": {"total": 2**30}, "collectives": {}, "bytes_source": source}
    return {"setting": "s", "target": "gpu:h100:1x8", "fits": True, "fit_line": "",
            "mesh": {"data": -1, "fsdp": 1}, "devices": 8, "programs": [train],
            "bound": {"generation_s": 3600.0, "train_images_per_s": 1e5,
                      "sample_images_per_s": 1e4}, "plan_s": 10.0}

  text = table.markdown([row("gpu kernels' operands and results"),
                         row("arguments + outputs (a floor)"),
                         {"setting": "s", "target": "tpu:v5e:2x2", "refused": "HBM"}])
  header, _, kernels, floor, refused = text.strip().splitlines()
  cells = lambda line: [c.strip() for c in line.strip("|").split("|")]
  assert len(cells(header)) == len(cells(kernels)) == len(cells(floor)) == len(cells(refused))
  expected = calibration.expected_s(3600.0) / 3600 * 8 * table.ARMS
  assert cells(kernels)[8:12] == ["1.00", f"{8 * table.ARMS:.1f}", f"{expected:.1f}",
                                  "GPU kernels"]
  assert cells(floor)[8:12] == ["- (floor)", "-", "-", "floor"]
