"""Two real processes on localhost (CPU backend, gloo collectives) equal one process: both
selections, and one whole generation of the recursive loop (train, sample, select, metrics),
whose candidate pool stays on the devices."""

import json
import math
import os
import socket
import subprocess
import sys

import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multiprocess_worker.py")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch(pid, nproc, port, devices_per_process, workdir, logs):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
  # Files, not pipes: a process blocked on a full pipe would stall the other's collectives.
  out, err = (open(logs / f"{workdir.name}{pid}.{s}", "w") for s in ("out", "err"))
  return subprocess.Popen([sys.executable, WORKER, str(pid), str(nproc), str(port),
                           str(workdir)], env=env, stdout=out, stderr=err, text=True)


def results(procs, logs):
  """Each process's JSON line; on any failure, every process's stderr."""
  for p in procs:
    p.wait(timeout=600)
  if any(p.returncode for p in procs):
    errs = {f.name: f.read_text()[-2000:] for f in sorted(logs.glob("*.err"))}
    raise AssertionError(f"worker failed: {[p.returncode for p in procs]}\n{errs}")
  outs = sorted(logs.glob("*.out"))
  return [json.loads(f.read_text().strip().splitlines()[-1]) for f in outs]


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
  port = free_port()
  # Both processes share one workdir, as hosts share a filesystem.
  logs = tmp_path / "logs"
  logs.mkdir()
  two = results([launch(pid, 2, port, 2, tmp_path / "two", logs) for pid in range(2)], logs)
  for f in logs.iterdir():
    f.unlink()
  (one,) = results([launch(0, 1, 0, 4, tmp_path / "one", logs)], logs)
  assert [r["process"] for r in two] == [0, 1] and all(r["devices"] == 4 for r in two)
  for r in two:
    assert r["greedy"] == one["greedy"] and r["threshold"] == one["threshold"]
    # The loop: same training, samples, selection and metrics on every process.
    (row,), (ref,) = r["rows"], one["rows"]
    for k in ("train_entropy", "pool_entropy", "selected_entropy", "gen_score", "fd_real"):
      assert row[k] == pytest.approx(ref[k], rel=1e-4), k
  # Process 0 alone wrote the metrics and the report, and its losses are one process's.
  read = lambda run, name: [json.loads(line) for line in
                            (tmp_path / run / name).read_text().splitlines()]
  losses = [r["loss"] for r in read("two", "gen_01/model/train.jsonl")]
  assert losses == pytest.approx([r["loss"] for r in read("one", "gen_01/model/train.jsonl")],
                                 rel=1e-5)
  assert [r["generation"] for r in read("two", "metrics.jsonl")] == [1]
  assert (tmp_path / "two" / "report.md").exists()
  assert (tmp_path / "two" / "gen_01" / "samples.png").exists()
  # The pool never reached a host. What was gathered across hosts: scalars, per-point
  # vectors (the kNN distances of the pool, split over both hosts) and the pictured images.
  for r in two:
    shapes = r["gathered"]
    assert [r["pool_size"]] in shapes, shapes  # the pool's distances: the spy saw gathers
    # Before the pool stayed on the devices, its chunks (64 x 8x8x1) came here whole.
    images = sum(math.prod(s) for s in shapes if len(s) == 4)
    assert images < r["pool_size"] * 8 * 8 // 4, shapes  # the nearest-neighbour panel only
