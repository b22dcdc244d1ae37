"""Sweeps: grid expansion, resumable runs side by side, and the aggregate over seeds."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from collapse_jax.study import aggregate, sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_grid_expands_to_named_runs_with_their_overrides(tmp_path):
  axes = sweep.parse_grid(["loop.n_train=64,128", "loop.selection=none,greedy"])
  runs = sweep.expand(axes, [0, 1, 2])
  assert len(runs) == 12 and len({r.name for r in runs}) == 12
  r = runs[-1]
  assert r.name == os.path.join("loop.n_train=128__loop.selection=greedy", "seed=2")
  cmd = sweep.command(r, "c.py:smoke", str(tmp_path), ["--config.loop.generations=3"], "rec.py")
  assert cmd[-4:] == ["--config.loop.generations=3", "--config.loop.n_train=128",
                      "--config.loop.selection=greedy", "--config.seed=2"]
  with pytest.raises(ValueError, match="field=v1,v2"):
    sweep.parse_grid(["loop.n_train"])
  sweep.write_spec(str(tmp_path), "c.py", axes, [0], [])
  with pytest.raises(ValueError, match="another sweep"):
    sweep.write_spec(str(tmp_path), "c.py", axes, [0, 1], [])


def _argv(tmp_path, *extra):
  """A two-run sweep of the MLP denoiser on vector data: the same sharded fit, checkpoints
  and resume as the UNet, at a fraction of its compile time."""
  return [sys.executable, os.path.join(REPO, "scripts/sweep.py"), "--config",
          os.path.join(REPO, "configs/theory.py:mog,smoke"), "--workdir", str(tmp_path),
          "--grid", "loop.selection=none,random", "--seeds", "1",
          "--config.loop.pool_factor=2", "--config.loop.pictures=False", *extra]


def _sweep(tmp_path, *extra):
  return subprocess.run(_argv(tmp_path, *extra), capture_output=True, text=True, timeout=900)


def _generations(run) -> list[int]:
  path = os.path.join(run, "metrics.jsonl")
  return [json.loads(line)["generation"] for line in open(path)] if os.path.exists(path) else []


@pytest.mark.slow
def test_sweep_killed_mid_run_resumes_and_listed_runs_in_any_order_agree(tmp_path):
  """Kill the sweep while its second run is half done: re-running redoes no finished run
  and resumes the killed one; the --list commands run by hand in reverse order give the
  same sweep.md."""
  a, b = tmp_path / "a", tmp_path / "b"
  names = [os.path.join(f"loop.selection={s}", "seed=0") for s in ("none", "random")]
  proc = subprocess.Popen(_argv(a, "--jobs", "1"), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 600
  while _generations(a / names[1]) != [1] and time.time() < deadline:  # gen 1 of 2 written
    assert proc.poll() is None, "the sweep ended before it could be killed"
    time.sleep(0.1)
  proc.send_signal(signal.SIGKILL)  # the launcher; its job dies with it (PR_SET_PDEATHSIG)
  proc.wait()
  assert sweep.finished(str(a / names[0])) and not sweep.finished(str(a / names[1]))
  first = (a / names[0] / "metrics.jsonl").read_bytes()
  stamp = os.stat(a / names[0] / "metrics.jsonl").st_mtime_ns
  out = _sweep(a, "--jobs", "2")
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  assert "1 of 2 runs finished; running 1, 1 at a time" in out.stdout
  assert "resuming at generation 2/2" in out.stdout
  assert (a / names[0] / "metrics.jsonl").read_bytes() == first  # not redone
  assert os.stat(a / names[0] / "metrics.jsonl").st_mtime_ns == stamp
  assert _generations(a / names[1]) == [1, 2]
  for name in names:
    config = json.loads((a / name / "config.json").read_text())
    assert config["loop"]["pool_factor"] == 2
  assert "2 of 2 runs finished; running 0" in _sweep(a).stdout

  listed = _sweep(b, "--list").stdout.strip().splitlines()
  assert [shlex.split(c)[shlex.split(c).index("--workdir") + 1] for c in listed] == \
      [str(b / n) for n in names]
  for command in reversed(listed):  # a scheduler's order, not the sweep's
    done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
  assert _sweep(b, "--aggregate").returncode == 0
  assert (b / "sweep.md").read_text() == (a / "sweep.md").read_text()
  runs = [[json.loads(line) for line in open(a / n / "metrics.jsonl")] for n in names]
  x, _ = aggregate.entropy_score_pairs(runs)  # r itself is tested in test_aggregate
  text = (a / "sweep.md").read_text()
  assert len(x) == 4 and f"over {len(x)} (run, generation) pairs: **" in text
  assert (a / "sweep_train_entropy.png").exists()
  assert (a / "sweep_entropy_vs_score.png").exists()


def _claims():
  return sweep.load_module(os.path.join(REPO, "configs", "claims.py")).CLAIMS


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n == "wishart" else pytest.mark.slow) for n in sorted(_claims())])
def test_claim_smoke_sweep_reaches_its_verdict(tmp_path, name):
  """Each claim of configs/claims.py end to end at smoke size, in-process: its whole grid
  with one seed of the smoke config (two for the seconds-long wishart runs), then sweep.md
  with its verdict (the intervals themselves are tested in test_aggregate/test_claims)."""
  from collapse_jax.loop.recursive import run_recursive
  from collapse_jax.study import sweep_report

  c = _claims()[name]
  config_path = os.path.join(REPO, c["config"])
  config_path += ",smoke" if ":" in c["config"] else ":smoke"
  axes = sweep.parse_grid(c["grid"])
  seeds = [0, 1] if name == "wishart" else [0]
  extra = c["overrides"] + ["--config.loop.pictures=False", "--config.train.checkpoint_every=4"]
  sweep.write_spec(str(tmp_path), config_path, axes, seeds, extra, name)
  for run in sweep.expand(axes, seeds):
    config = sweep.load_config(config_path)
    sweep.apply_overrides(config, extra + [f"--config.{k}={v}" for k, v in run.cell]
                          + [f"--config.seed={run.seed}"])
    run_recursive(config, str(tmp_path / run.name))
  with open(sweep_report.write(str(tmp_path))) as f:
    section = f.read().split(f"## Claim: {name}")[1].split("## ")[0]
  assert "claims hold on this run" in section, section
  assert section.count("| **") >= 2, section  # two or more claims decided, with numbers


def test_overrides_apply_in_process_as_on_the_command_line():
  config = sweep.load_config(os.path.join(REPO, "configs/digits.py:smoke"))
  sweep.apply_overrides(config, ["--config.loop.n_train=32", "--config.loop.tau0=5",
                                 "--config.loop.finetune=True", "--config.loop.paradigm=fresh",
                                 "--config.model.channels=(8, 16)"])
  assert (config.loop.n_train, config.loop.tau0, config.loop.finetune) == (32, 5.0, True)
  assert config.loop.paradigm == "fresh" and tuple(config.model.channels) == (8, 16)
  with pytest.raises(ValueError, match="--config.field=value"):
    sweep.apply_overrides(config, ["loop.n_train=3"])
