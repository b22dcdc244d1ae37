"""Parallel runs: output kept per job, failures named."""

import sys

import pytest

from collapse_jax.study.launch import run_parallel


def test_jobs_run_at_once_and_log_apart(tmp_path, capsys):
  # Each job waits for the other's file: they finish only if they run at the same time.
  wait_for = "import os,sys,time\nopen(sys.argv[1],'w').close()\n" \
             "t=time.time()\nwhile not os.path.exists(sys.argv[2]):\n  assert time.time()-t<60\n" \
             "  time.sleep(0.05)\nprint('done', sys.argv[1])"
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  run_parallel({"first": [sys.executable, "-c", wait_for, a, b],
                "second": [sys.executable, "-c", wait_for, b, a]}, str(tmp_path / "logs"))
  out = capsys.readouterr().out
  assert f"[first] done {a}" in out and f"[second] done {b}" in out
  assert (tmp_path / "logs" / "first.log").read_text() == f"done {a}\n"


def test_a_failed_job_is_named_with_its_log(tmp_path):
  with pytest.raises(RuntimeError, match=r"bad exited with 3 \(log: .*bad\.log\)") as e:
    run_parallel({"good": [sys.executable, "-c", "print(1)"],
                  "bad": [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]},
                 str(tmp_path))
  assert "good" not in str(e.value)
  assert (tmp_path / "bad.log").read_text() == "boom\n"


def test_jobs_die_with_a_killed_launcher(tmp_path):
  """A SIGKILLed sweep leaves no orphan run holding its workdir."""
  import os
  import signal
  import subprocess
  import time

  child = "import os,sys,time; open(sys.argv[1],'w').write(str(os.getpid())); time.sleep(300)"
  launcher = ("import sys; from collapse_jax.study.launch import run_parallel; "
              f"run_parallel({{'c': [sys.executable, '-c', {child!r}, sys.argv[1]]}}, sys.argv[2])")
  pid_file = tmp_path / "pid"
  proc = subprocess.Popen([sys.executable, "-c", launcher, str(pid_file), str(tmp_path)],
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  t = time.time()
  while not (pid_file.exists() and pid_file.read_text()):
    assert time.time() - t < 60
    time.sleep(0.05)
  pid = int(pid_file.read_text())
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  t = time.time()
  while os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid):
    assert time.time() - t < 30, "the job outlived its launcher"
    time.sleep(0.05)


def _state(pid: int) -> str:
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().split(")")[-1].split()[0]
  except OSError:
    return "gone"


def test_sigterm_is_passed_to_running_jobs_and_stops_the_rest(tmp_path):
  """A preempted launcher (SLURM's SIGTERM to `scripts/arms.py`) tells its running jobs,
  which checkpoint and exit 75, starts none of the pending ones, and says so."""
  import os
  import signal
  import threading
  import time

  from collapse_jax.study.launch import Place, Stopped, run_jobs

  job = ("import signal,sys,time\n"
         "signal.signal(signal.SIGTERM, lambda *_: (open(sys.argv[1]+'.term','w').close(),"
         " sys.exit(75)))\n"
         "open(sys.argv[1],'w').close()\ntime.sleep(120)")
  names = ("a", "b", "c")
  jobs = {n: [sys.executable, "-c", job, str(tmp_path / n)] for n in names}

  def preempt():
    t = time.time()
    while not ((tmp_path / "a").exists() and (tmp_path / "b").exists()):
      assert time.time() - t < 60
      time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)

  threading.Thread(target=preempt, daemon=True).start()
  before = signal.getsignal(signal.SIGTERM)
  with pytest.raises(Stopped, match=r"0 job\(s\) finished, 2 checkpointed \(a, b\), "
                                    r"1 not started"):
    run_jobs(jobs, [Place(), Place()], str(tmp_path / "logs"))
  assert (tmp_path / "a.term").exists() and (tmp_path / "b.term").exists()
  assert not (tmp_path / "c").exists()
  assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
