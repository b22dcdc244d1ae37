"""One live run per workdir: a second launch is refused, a killed run's lock is not."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from collapse_jax import workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOLD = ("import sys, time; from collapse_jax import workdir; workdir.claim(sys.argv[1]); "
        "print('held', flush=True); time.sleep(600)")


def _holder(path):
  proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                          text=True, cwd=REPO)
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_second_claim_names_the_holder_and_a_killed_holder_frees_it(tmp_path):
  holder = _holder(tmp_path)
  try:
    with pytest.raises(RuntimeError, match=f"host {socket.gethostname()} pid {holder.pid}"):
      workdir.claim(str(tmp_path))
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  workdir.claim(str(tmp_path))  # the kernel dropped the killed run's lock
  workdir.claim(str(tmp_path))  # claiming again from the holder is a no-op
  assert f"pid {os.getpid()}" in (tmp_path / workdir.LOCK_NAME).read_text()
  workdir.release(str(tmp_path))


def test_a_second_recursive_run_is_refused_before_it_writes(tmp_path):
  holder = _holder(tmp_path)
  try:
    t = time.time()
    out = subprocess.run([sys.executable, os.path.join(REPO, "scripts/recursive.py"),
                          "--config", os.path.join(REPO, "configs/digits.py:smoke"),
                          "--workdir", str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode != 0
    assert f"workdir {tmp_path} is in use by the run host" in out.stderr
    assert f"pid {holder.pid}" in out.stderr, out.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == [workdir.LOCK_NAME]  # nothing else written
    assert time.time() - t < 120
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
