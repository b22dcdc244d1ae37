"""A user's mistake is one line on stderr and exit 2; Ctrl-C is one line and exit 130."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "recursive.py")


def _run(*args, **kw):
  env = {k: v for k, v in os.environ.items() if k != "COLLAPSE_DEBUG"}
  return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                        cwd=ROOT, env=env, timeout=120, **kw)


@pytest.mark.parametrize("args,expect", [
    (["--config", "configs/cifar10.py:greddy"], "configs/cifar10.py:greddy: unknown variant"),
    (["--config", "configs/digits.py", "--config.loop.generatons=3"],
     '--config.loop.generatons: no such config field. Did you mean "generations"'),
    (["--config", "configs/digits.py:smoke", "--config.train.batch_size=0"],
     "config.train.batch_size: must be a positive integer"),
    (["--config", "configs/cifar10.py", "--config.data.path=/nonexistent/tfds",
      "--config.allow_slow_platform=True"],
     "config.data.path=/nonexistent/tfds does not exist"),
    # The paper's CIFAR-10 settings on this CPU: refused before any data is read.
    (["--config", "configs/cifar10.py"], "--config.allow_slow_platform=True to start it"),
])
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, args, expect):
  out = _run(*args, "--workdir", str(tmp_path / "w"))
  assert out.returncode == 2, out.stderr
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert lines[-1].startswith("error: ") and expect in lines[-1], out.stderr
  assert "Traceback" not in out.stderr
  print(lines[-1])
  assert not (tmp_path / "w").exists()  # refused before the workdir is claimed


def test_debug_keeps_the_traceback(tmp_path):
  out = subprocess.run([sys.executable, SCRIPT, "--config", "configs/digits.py:smoke",
                        "--config.train.batch_size=0", "--workdir", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env=os.environ | {"COLLAPSE_DEBUG": "1"})
  assert out.returncode != 0 and "Traceback" in out.stderr


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
  # A shell that starts pytest in the background ignores SIGINT for its children, and Python
  # keeps an ignored SIGINT ignored: give the run the default handler back.
  proc = subprocess.Popen([sys.executable, SCRIPT, "--config", "configs/digits.py:smoke",
                           "--config.train.num_steps=100000", "--workdir", str(tmp_path)],
                          cwd=ROOT, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    deadline = time.time() + 120
    while not (tmp_path / "gen_01").exists() and time.time() < deadline:
      time.sleep(0.5)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    # A signal that lands inside an XLA compilation is handled when it returns: on a loaded
    # machine that can take minutes.
    _, err = proc.communicate(timeout=600)
  finally:
    if proc.poll() is None:  # never leave a 100,000-step run behind a failed test
      proc.kill()
      proc.wait()
  assert proc.returncode == 130, err
  assert re.match(r"error: interrupted at generation 1/\d+, phase (train|select); rerun the "
                  "same command", err.strip().splitlines()[-1]), err
  assert "Traceback" not in err


def test_help_lists_the_flags_and_the_config_fields():
  out = _run("--help")
  assert out.returncode == 0 and "--workdir: Directory of the run" in out.stdout
  assert "Add --config=FILE[:variant] to --help" in out.stdout
  out = _run("--help", "--config=configs/digits.py:greedy")
  assert out.returncode == 0, out.stderr
  assert "--config.loop.generations=6" in out.stdout
  assert "--config.loop.selection='greedy'" in out.stdout
  out = _run("-h", "--config=configs/digits.py:gredy")
  assert out.returncode == 2 and "unknown variant(s) ['gredy']" in out.stderr


def test_disk_full_is_one_line_naming_the_path_and_the_free_space(tmp_path):
  script = tmp_path / "full.py"
  script.write_text(
      "import errno\nfrom collapse_jax import cli\n\n"
      "def job(config, workdir, overwrite):\n"
      "  raise OSError(errno.ENOSPC, 'No space left on device', workdir + '/x.bin')\n\n"
      "cli.run(job)\n")
  out = subprocess.run([sys.executable, str(script), "--config",
                        os.path.join(ROOT, "configs/digits.py:smoke"), "--workdir",
                        str(tmp_path / "w")], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
  assert out.returncode == 2, out.stderr
  last = out.stderr.strip().splitlines()[-1]
  assert re.match(rf"error: no space left on the device writing {tmp_path}/w/x.bin "
                  r"\(\d+ MiB free\); free some space", last), last
  assert "Traceback" not in out.stderr
