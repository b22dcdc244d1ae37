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


def launch(pid, nproc, port, devices_per_process, workdir, logs, generations=1, **faults):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
  env |= {f"FAULT_{k.upper()}": str(v) for k, v in faults.items()}
  # Files, not pipes: a process blocked on a full pipe would stall the other's collectives.
  out, err = (open(logs / f"{workdir.name}{pid}.{s}", "w") for s in ("out", "err"))
  return subprocess.Popen([sys.executable, WORKER, str(pid), str(nproc), str(port),
                           str(workdir), str(generations)], env=env, stdout=out, stderr=err,
                          text=True)


def results(procs, logs, code=0):
  """Each process's JSON line (then the logs are cleared); on any other exit code than
  `code`, every process's stderr."""
  for p in procs:
    p.wait(timeout=600)
  if any(p.returncode != code for p in procs):
    errs = {f.name: f.read_text()[-2000:] for f in sorted(logs.glob("*.err"))}
    raise AssertionError(f"worker exit codes: {[p.returncode for p in procs]}\n{errs}")
  outs = sorted(logs.glob("*.out"))
  found = [json.loads(f.read_text().strip().splitlines()[-1]) for f in outs]
  for f in logs.iterdir():
    f.unlink()
  return found


def assert_rows_equal(row, ref):
  for k in ("train_entropy", "pool_entropy", "selected_entropy", "gen_score", "fd_real"):
    assert row[k] == pytest.approx(ref[k], rel=1e-4), k


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
  """Two processes equal one, also when their views differ: process 1's clock runs 1000x
  slow (alone it would skip a checkpoint, a collective), its first checkpoint read fails
  (alone it would restore an older step and move a good one aside), and it alone gets
  SIGTERM mid-training (both must stop at one step, then resume)."""
  logs = tmp_path / "logs"
  logs.mkdir()
  two_dir = tmp_path / "two"
  port = free_port()
  slow = {"slow_clock": 1}
  two = results([launch(pid, 2, port, 2, two_dir, logs, 1, **(slow if pid else {}))
                 for pid in range(2)], logs)
  (one,) = results([launch(0, 1, 0, 4, tmp_path / "one", logs, 2)], logs)
  assert [r["process"] for r in two] == [0, 1] and all(r["devices"] == 4 for r in two)
  for r in two:
    assert r["greedy"] == one["greedy"] and r["threshold"] == one["threshold"]
    # The loop: same training, samples, selection and metrics on every process.
    (row,) = r["rows"]
    assert_rows_equal(row, one["rows"][0])
  # Process 0 alone wrote the metrics and the report, and its losses are one process's.
  read = lambda run, name: [json.loads(line) for line in
                            (tmp_path / run / name).read_text().splitlines()]
  losses = [r["loss"] for r in read("two", "gen_01/model/train.jsonl")]
  assert losses == pytest.approx([r["loss"] for r in read("one", "gen_01/model/train.jsonl")],
                                 rel=1e-5)
  assert [r["generation"] for r in read("two", "metrics.jsonl")] == [1]
  assert (two_dir / "report.md").exists()
  assert (two_dir / "gen_01" / "samples.png").exists()
  # The pool never reached a host. What was gathered across hosts: scalars, per-point
  # vectors (the kNN distances of the pool, split over both hosts), the learned encoder's
  # parameters (broadcast from process 0) and the pictured images.
  for r in two:
    shapes = r["gathered"]
    assert [r["pool_size"]] in shapes, shapes  # the pool's distances: the spy saw gathers
    assert [3, 3, 64, 64] in shapes, shapes  # the learned CNN's last conv kernel
    # Before the pool stayed on the devices, its chunks (64 x 8x8x1) came here whole; the
    # learned encoder trains on the held-out images every host loaded (1000 x 8x8x1 once).
    images = sum(math.prod(s) for s in shapes if len(s) == 4 and s[1:] == [8, 8, 1])
    assert images < r["pool_size"] * 8 * 8 // 4, shapes  # the nearest-neighbour panel only

  # Resumed to two generations: process 1's first checkpoint read fails once, and process 1
  # alone is sent SIGTERM at its 6th preemption check (generation 2, training step 6).
  port = free_port()
  faults = slow | {"restore_once": 1, "sigterm_at": 6}
  stopped = results([launch(pid, 2, port, 2, two_dir, logs, 2, **(faults if pid else {}))
                     for pid in range(2)], logs, code=75)
  print("preempted:", [r["preempted"] for r in stopped])
  assert stopped[0]["preempted"] == stopped[1]["preempted"]  # one step, on both processes
  step = int(stopped[0]["preempted"].split("at training step ")[1].split("/")[0])
  assert 6 <= step < 12 and (two_dir / "gen_02/model/checkpoints" / str(step)).exists()
  assert not list(tmp_path.rglob("*.damaged")), "a good checkpoint was moved aside"

  # The same command finishes, as the uninterrupted one-process run did.
  port = free_port()
  done = results([launch(pid, 2, port, 2, two_dir, logs, 2, **(slow if pid else {}))
                  for pid in range(2)], logs)
  for r in done:
    assert [row["generation"] for row in r["rows"]] == [1, 2]
    assert_rows_equal(r["rows"][1], one["rows"][1])
  for name in ("gen_02/model/train.jsonl",):
    mine, ref = read("two", name), read("one", name)
    assert [r["step"] for r in mine] == [r["step"] for r in ref]
    assert [r["loss"] for r in mine] == pytest.approx([r["loss"] for r in ref], rel=1e-5)
  assert [r["generation"] for r in read("two", "metrics.jsonl")] == [1, 2]
  assert not list(tmp_path.rglob("*.damaged"))
