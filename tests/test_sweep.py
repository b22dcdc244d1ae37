"""Sweeps: grid expansion, resumable runs side by side, and the aggregate over seeds."""

import json
import os
import shlex
import subprocess
import sys

import pytest

from collapse_jax import aggregate, sweep

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


def _sweep(tmp_path, *extra):
  return subprocess.run(
      [sys.executable, os.path.join(REPO, "scripts/sweep.py"), "--config",
       os.path.join(REPO, "configs/digits.py:smoke"), "--workdir", str(tmp_path),
       "--grid", "loop.selection=none,random", "--seeds", "1",
       "--config.loop.pool_factor=2", "--config.loop.generations=1", *extra],
      capture_output=True, text=True, timeout=900)


def test_sweep_runs_resumes_lists_and_aggregates(tmp_path):
  out = _sweep(tmp_path, "--jobs", "2")
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  assert "0 of 2 runs finished; running 2, 2 at a time" in out.stdout
  names = [os.path.join(f"loop.selection={s}", "seed=0") for s in ("none", "random")]
  for name in names:
    assert sweep.finished(str(tmp_path / name))
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["loop"]["pool_factor"] == 2
  again = _sweep(tmp_path)
  assert "2 of 2 runs finished; running 0" in again.stdout
  listed = _sweep(tmp_path, "--list").stdout.strip().splitlines()
  assert [shlex.split(c)[shlex.split(c).index("--workdir") + 1] for c in listed] == \
      [str(tmp_path / n) for n in names]
  text = (tmp_path / "sweep.md").read_text()
  runs = [[json.loads(line) for line in open(tmp_path / n / "metrics.jsonl")] for n in names]
  x, y = aggregate.entropy_score_pairs(runs)  # r itself is tested in test_aggregate
  assert len(x) == 2 and f"over {len(x)} (run, generation) pairs: **nan**" in text  # < 3
  assert (tmp_path / "sweep_train_entropy.png").exists()
  assert (tmp_path / "sweep_entropy_vs_score.png").exists()
