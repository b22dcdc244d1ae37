"""Launchers' device plans (study/devices.py) on the hosts a researcher meets, and a real
scripts/arms.py run on 8 fake CPU devices whose arms see disjoint devices."""

import os
import re
import subprocess
import sys

import pytest

from collapse_jax.study import devices
from collapse_jax.study.devices import Host, Need

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = Need(fixed=1, flexible=True, batch=128)


def _ids(slots):
  return [s.devices for s in slots]


def test_eight_gpus_three_arms_get_two_gpus_each():
  slots = devices.plan(Host("gpu", 8), 3, DIGITS)
  assert _ids(slots) == [("0", "1"), ("2", "3"), ("4", "5")]
  assert [s.env for s in slots] == [{"CUDA_VISIBLE_DEVICES": "0,1"},
                                    {"CUDA_VISIBLE_DEVICES": "2,3"},
                                    {"CUDA_VISIBLE_DEVICES": "4,5"}]


def test_one_gpu_three_arms_run_one_after_another():
  slots = devices.plan(Host("gpu", 1), 3, DIGITS)
  assert len(slots) == 1 and slots[0].devices == ("0",) and slots[0].env == {}


def test_a_v5e8_tpu_vm_three_arms_get_two_chips_each():
  slots = devices.plan(Host("tpu", 8), 3, DIGITS)
  assert _ids(slots) == [("0", "1"), ("2", "3"), ("4", "5")]
  for i, s in enumerate(slots):
    assert s.env["TPU_CHIPS_PER_PROCESS_BOUNDS"] == "1,2,1"
    assert s.env["TPU_PROCESS_BOUNDS"] == "1,1,1"
    assert s.env["TPU_VISIBLE_CHIPS"] == ",".join(s.devices)
    assert s.env["TPU_MESH_CONTROLLER_PORT"] == str(devices.TPU_PORT + i)  # a port each


def test_two_cpu_cores_keep_the_core_shares():
  assert devices.plan(Host("cpu", 0), 3, DIGITS) == []


def test_a_mesh_needing_every_chip_runs_alone_and_a_fixed_mesh_gets_its_size():
  assert devices.plan(Host("tpu", 8), 3, Need(8, True, 128))[0].env == {}
  slots = devices.plan(Host("gpu", 8), 5, Need(4, False, 128))
  assert _ids(slots) == [("0", "1", "2", "3"), ("4", "5", "6", "7")]  # 2 at a time
  with pytest.raises(ValueError, match="needs 16 devices"):
    devices.plan(Host("gpu", 8), 2, Need(16, False, 128))


def test_the_batch_bounds_the_split():
  # Batch 12 divides over 1, 2 and 4 devices: 4 GPUs for 2 jobs gives 2 each.
  assert _ids(devices.plan(Host("gpu", 4), 2, Need(1, True, 12))) == [("0", "1"), ("2", "3")]
  # Batch 9 divides over 1 device only.
  assert len(devices.plan(Host("gpu", 8), 2, Need(1, True, 9))[0].devices) == 1


def test_a_cuda_visible_subset_is_split_by_its_own_ids():
  host = devices.detect({"CUDA_VISIBLE_DEVICES": "4,5,6,7"})
  assert host == Host("gpu", 4, ("4", "5", "6", "7"))
  assert _ids(devices.plan(host, 2, DIGITS)) == [("4", "5"), ("6", "7")]


def test_detect_finds_fake_cpu_devices_and_a_plain_cpu():
  env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert devices.detect(env) == Host("cpu", 8)
  assert devices.detect({"JAX_PLATFORMS": "cpu"}) == Host("cpu", 0)
  assert devices.parse("gpu:8") == Host("gpu", 8) and devices.parse("cpu") == Host("cpu", 0)
  with pytest.raises(ValueError, match="--devices='h100'"):
    devices.parse("h100")


def test_need_of_a_config():
  from collapse_jax.study.sweep import load_config
  config = load_config(os.path.join(REPO, "configs/digits.py"))
  config.mesh = {"data": -1, "fsdp": 2}
  assert devices.need_of(config) == Need(2, True, config.train.batch_size)


@pytest.mark.slow
def test_arms_on_eight_fake_devices_see_disjoint_devices(tmp_path):
  """scripts/arms.py on the smoke config with 8 forced CPU devices: each arm's run logs the
  devices of its mesh, and no two arms share one."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  out = subprocess.run([sys.executable, os.path.join(REPO, "scripts/arms.py"), "--config",
                        os.path.join(REPO, "configs/digits.py:smoke"), "--workdir",
                        str(tmp_path)], capture_output=True, text=True, timeout=900, env=env)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  print("\n".join(line for line in out.stdout.splitlines()
                  if "devices" in line or "platform" in line))
  assert "8 cpu devices: 3 of 3 jobs at a time" in out.stdout
  seen = {}
  for arm in ("vanilla", "greedy", "threshold"):
    lines = [line for line in out.stdout.splitlines()
             if line.startswith(f"[{arm}]") and "on this process (ids" in line]
    assert lines, arm
    ids = re.search(r"on this process \(ids \[([\d, ]+)\]\)", lines[0]).group(1)
    seen[arm] = {int(i) for i in ids.split(",")}
    assert len(seen[arm]) == 2 and "2 devices in the mesh" in lines[0]
  assert not (seen["vanilla"] & seen["greedy"] or seen["vanilla"] & seen["threshold"]
              or seen["greedy"] & seen["threshold"]), seen
