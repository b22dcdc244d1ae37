"""Two real processes on localhost (CPU backend, gloo collectives) equal one process."""

import json
import os
import socket
import subprocess
import sys

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multiprocess_worker.py")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch(pid, nproc, port, devices_per_process):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
  return subprocess.Popen([sys.executable, WORKER, str(pid), str(nproc), str(port)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc):
  out, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, err[-3000:]
  return json.loads(out.strip().splitlines()[-1])


def test_two_processes_equal_one_process():
  port = free_port()
  procs = [launch(pid, 2, port, devices_per_process=2) for pid in range(2)]
  two = [result(p) for p in procs]
  one = result(launch(0, 1, 0, devices_per_process=4))
  assert [r["process"] for r in two] == [0, 1] and all(r["devices"] == 4 for r in two)
  for r in two:
    assert r["greedy"] == one["greedy"] and r["threshold"] == one["threshold"]
    for a, b in zip(r["losses"], one["losses"], strict=True):
      assert abs(a - b) <= 1e-5 * abs(b)
