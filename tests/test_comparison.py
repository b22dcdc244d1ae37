"""The comparison report: verdict first, decided on the runs' own numbers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from collapse_jax.images import save_grid
from collapse_jax.study import comparison

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fake_run(path, selection, entropy, score, mem):
  os.makedirs(path)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump({"loop": {"selection": selection, "paradigm": "replace", "n_train": 8}}, f)
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    for g, (e, s, m) in enumerate(zip(entropy, score, mem, strict=True)):
      f.write(json.dumps({"step": g + 1, "generation": g + 1, "train_entropy": e,
                          "gen_score": s, "memorized_frac": m, "heldout_score": 900.0}) + "\n")
  for g in (1, len(entropy)):
    os.makedirs(os.path.join(path, f"gen_{g:02d}"))
    images = np.random.default_rng(g).uniform(-1, 1, (4, 8, 8, 1))
    save_grid(images, os.path.join(path, f"gen_{g:02d}", "samples.png"))


def test_report_opens_with_the_verdict_measured_on_the_runs(tmp_path):
  _fake_run(tmp_path / "vanilla", "none", [300, 290, 280], [800, 500, 300], [0.0, 0.1, 0.2])
  _fake_run(tmp_path / "greedy", "greedy", [300, 310, 305], [800, 700, 600], [0.0, 0.0, 0.3])
  runs = [str(tmp_path / "vanilla"), str(tmp_path / "greedy")]
  out = subprocess.run([sys.executable, os.path.join(REPO, "scripts/compare.py"), *runs,
                        "--out", str(tmp_path / "cmp")], capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  text = (tmp_path / "cmp" / "compare.md").read_text()
  assert text.index("## Verdict") < text.index("## vanilla")
  assert "7 of 8 claims hold" in text and "Smoke-sized" not in text
  assert "| greedy keeps memorized_frac lower than vanilla's at generation 3 | 0.3 vs 0.2 | " \
         "**does not hold** |" in text
  assert "800 -> 500 -> 300 (ratio 0.38)" in text
  for name in ("samples_first_last.png", "entropy.png", "memorization.png", "gen_score.png"):
    assert (tmp_path / "cmp" / name).exists(), name


def test_no_verdict_without_exactly_one_vanilla_run(tmp_path):
  _fake_run(tmp_path / "a", "greedy", [1.0, 2.0], [1.0, 2.0], [0.0, 0.0])
  runs = {"a": comparison.load_run(str(tmp_path / "a"))}
  assert comparison.claims(runs) == []


@pytest.mark.slow
def test_arms_script_runs_the_arms_side_by_side_and_compares(tmp_path):
  """scripts/arms.py, the body of `make run`, on the smoke config (two arms, seconds), with
  the memorization limit drawn beside them (--limit)."""
  out = subprocess.run([sys.executable, os.path.join(REPO, "scripts/arms.py"), "--config",
                        os.path.join(REPO, "configs/digits.py:smoke"), "--arms",
                        "vanilla,greedy", "--workdir", str(tmp_path), "--config.seed=3",
                        "--limit"],
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  assert "[greedy]" in out.stdout and "[vanilla]" in out.stdout
  # Generation 1 is trained once, by the first arm, and adopted by the others.
  assert "[greedy]" in out.stdout.split("adopted the identical model")[0].splitlines()[-1]
  assert "[gen 1/2] train step" not in "".join(
      line for line in out.stdout.splitlines() if line.startswith("[greedy]"))
  for arm, selection in (("vanilla", "none"), ("greedy", "greedy")):
    config = json.loads((tmp_path / arm / "config.json").read_text())
    assert config["seed"] == 3 and config["loop"]["selection"] == selection
  text = (tmp_path / "compare.md").read_text()
  assert "## Verdict" in text and "greedy keeps train_entropy" in text
  assert "**Smoke-sized run** (4 train steps per generation)" in text
  limit = json.loads((tmp_path / "memorizer" / "config.json").read_text())
  assert limit["model"]["kind"] == "memorizer" and limit["loop"]["selection"] == "none"
  assert "`memorizer` is a reference, not judged" in text and "## memorizer" in text
  assert "memorizer keeps" not in text  # the limit is drawn, never judged
