"""End-to-end recursive runs of a tiny config, resume after SIGKILL, and input errors."""

import math
import os
import signal
import subprocess
import sys
import time

import pytest

from collapse_jax.loop.recursive import run_recursive
from collapse_jax.metrics.writer import read_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "configs"))
import digits  # noqa: E402
import digits_cfg  # noqa: E402

METRICS = ("train_entropy", "pool_entropy", "selected_entropy", "gen_score", "fd_real",
           "pixel_variance", "memorized_frac", "unique_copied", "heldout_score", "copy_frac",
           "probe_conf", "real_probe_conf", "fd_real_heldout")
DINO_METRICS = ("dino_train_entropy", "dino_pool_entropy", "dino_selected_entropy",
                "dino_gen_score", "fd_dino", "fid", "dino_memorized_frac",
                "dino_unique_copied", "dino_heldout_score", "fd_dino_heldout")


@pytest.fixture(scope="module")
def encoder_weights(tmp_path_factory):
  """(tiny random DINOv2 HF directory, random converted FID Inception)."""
  from tests.encoder_weights import DINOV2_TINY, dinov2_dir, inception_msgpack

  root = tmp_path_factory.mktemp("weights")
  dinov2_dir(str(root / "dinov2"), DINOV2_TINY)
  inception_msgpack(str(root / "inception.msgpack"))
  return str(root / "dinov2"), str(root / "inception.msgpack")


@pytest.mark.parametrize("paradigm,selection,conditional", [
    ("replace", "none", False),
    # replace + greedy runs in the SIGKILL test below; random + finetune in accumulate_all's
    pytest.param("replace", "random", False, marks=pytest.mark.slow),
    ("replace", "threshold", True),
    ("accumulate", "none", False),
    ("accumulate_all", "random", False),
    # DINOv2 selection, FID and precision/recall: the slowest (Inception at 299x299).
    pytest.param("fresh", "threshold", False, marks=pytest.mark.slow),
])
def test_end_to_end(tmp_path, paradigm, selection, conditional, encoder_weights):
  config = (digits_cfg if conditional else digits).get_config("smoke")
  if paradigm == "fresh":  # selection in DINOv2 space, FID and precision/recall
    config.features = "dinov2"
    config.features_weights, config.eval.fid_weights = encoder_weights
    config.loop.tau0 = 5.0
    config.loop.n_train = 16  # Inception at 299x299 costs ~0.1 s per image on this CPU
    config.eval.batch_size = 16
  config.loop.paradigm = paradigm
  config.loop.selection = selection
  config.loop.pool_factor = 1 if selection == "none" else 2
  config.loop.fresh_fraction = 0.25 if paradigm == "fresh" else 0.0
  config.loop.finetune = selection == "random"
  rows = run_recursive(config, str(tmp_path))
  assert [r["generation"] for r in rows] == [1, 2]
  for r in rows:
    assert all(math.isfinite(r[k]) for k in METRICS), r
    assert 0.1 <= r["probe_conf"] <= 1 and 0.5 <= r["real_probe_conf"] <= 1, r
    fracs = sum(v for k, v in r.items() if k.startswith("frac_"))
    assert abs(fracs - 1) < 1e-9
  assert rows[0]["frac_real"] == 1.0
  written = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [{k: v for k, v in r.items() if k != "step"} for r in written] == rows
  for name in ("metrics.csv", "report.md", "entropy.png", "gen_score.png", "fd_real.png",
               "sources.png", "gen_01/samples.png", "gen_02/nearest.png"):
    assert (tmp_path / name).exists(), name
  if paradigm == "accumulate" and selection == "none":
    assert rows[1]["frac_real"] == 0.5 and rows[1]["frac_gen1"] == 0.5
  if paradigm == "fresh":
    assert rows[1]["frac_real"] == 0.25
    for r in rows:
      assert all(math.isfinite(r[k]) for k in DINO_METRICS), r
      assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
    for name in ("dino_entropy.png", "fd_dino.png", "fid.png", "precision_recall.png"):
      assert (tmp_path / name).exists(), name
    # the real set's dinov2, inception and learned features, and each space's full-split stats
    assert len(list((tmp_path / "features").glob("*.npy"))) == 3
    assert len(list((tmp_path / "features").glob("*_stats_*.npz"))) == 4
  if paradigm == "accumulate_all":
    assert rows[1]["train_size"] == 2 * rows[0]["train_size"]


def recursive(workdir, *overrides):
  cmd = [sys.executable, os.path.join(REPO, "scripts/recursive.py"),
         "--config", os.path.join(REPO, "configs/digits.py:smoke,greedy"),
         "--workdir", str(workdir), "--config.train.num_steps=40",
         "--config.train.checkpoint_every=10", *overrides]
  # Restarts reuse the first run's compilations through JAX's persistent cache, as a user's
  # restarts would with JAX_COMPILATION_CACHE_DIR set (docs/scaling.md).
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(workdir.parent / "xla_cache"))
  return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env)


def kill_when(proc, path, timeout=600):
  deadline = time.time() + timeout
  while not path.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"


@pytest.mark.slow
def test_sigkill_mid_training_and_at_a_phase_boundary_then_resume(tmp_path):
  full = recursive(tmp_path / "full")
  out, _ = full.communicate(timeout=900)
  assert full.returncode == 0, out
  expected = read_jsonl(str(tmp_path / "full" / "metrics.jsonl"))

  run = tmp_path / "killed"
  # Mid-training in generation 2, then right after generation 1's pool was saved.
  kill_when(recursive(run), run / "gen_02" / "model" / "checkpoints" / "20")
  _tear(run / "metrics.jsonl")  # a crash mid-write: the resume repairs it from the loop state
  resumed = recursive(run)
  kill_when(resumed, run / "gen_02" / "samples.png")
  final = recursive(run)
  out, _ = final.communicate(timeout=900)
  assert final.returncode == 0, out
  got = read_jsonl(str(run / "metrics.jsonl"))
  assert [r["generation"] for r in got] == [1, 2]
  for a, b in zip(got, expected, strict=True):
    for k in METRICS:
      assert a[k] == pytest.approx(b[k], rel=1e-5), k

  done = (run / "metrics.jsonl").read_bytes(), (run / "metrics.csv").read_bytes()
  _tear(run / "metrics.jsonl")  # damage to a finished run is noticed and repaired too
  again = recursive(run)
  out, _ = again.communicate(timeout=300)
  assert again.returncode == 0 and "already finished" in out and "repaired" in out
  assert ((run / "metrics.jsonl").read_bytes(), (run / "metrics.csv").read_bytes()) == done


def _tear(path):
  """Cuts the file in the middle of its last line, as a crash during a write would."""
  text = path.read_text()
  assert text.endswith("\n")
  path.write_text(text[: text.rstrip("\n").rfind("\n") + 1 + 25])


@pytest.mark.parametrize("field,value,message", [
    ("features", "clip", "config.features"),
    ("features", "dinov2", "config.features_weights"),
    ("eval.fid_weights", "/no/such/pt_inception.pth", "config.eval.fid_weights"),
    ("paradigm", "recycle", "config.loop.paradigm"),
    ("selection", "kmeans", "config.loop.selection"),
    ("pool_factor", 0, "config.loop.pool_factor"),
    ("fresh_fraction", 1.5, "config.loop.fresh_fraction"),
])
def test_bad_loop_config_fails_before_training(tmp_path, field, value, message):
  config = digits.get_config("smoke")
  config.update_from_flattened_dict({field if "." in field or field == "features"
                                      else f"loop.{field}": value})
  with pytest.raises(ValueError, match=message.replace(".", r"\.")):
    run_recursive(config, str(tmp_path))
  assert not (tmp_path / "gen_01").exists()


def test_paper_configs_say_what_is_missing(tmp_path):
  import cifar10
  import ffhq

  with pytest.raises(ValueError, match="config.features_weights"):
    run_recursive(cifar10.get_config("greedy,dino"), str(tmp_path / "c10"))
  with pytest.raises(FileNotFoundError, match="config.data.path"):
    run_recursive(ffhq.get_config("threshold"), str(tmp_path / "ffhq"))
  config = cifar10.get_config()
  config.data.path = str(tmp_path / "no_tfds_here")
  with pytest.raises(FileNotFoundError, match="tfds build cifar10"):
    run_recursive(config, str(tmp_path / "c10b"))


def test_first_model_is_adopted_only_from_an_identical_setting(tmp_path):
  from collapse_jax.generators.diffusion import adopt_first_model

  source = digits.get_config("smoke")
  (tmp_path / "src" / "gen_01" / "model" / "checkpoints" / "4" / "state").mkdir(parents=True)
  (tmp_path / "src" / "config.json").write_text(source.to_json())
  greedy = digits.get_config("smoke,greedy")  # other loop fields: the same generation-1 model
  other_lr = digits.get_config("smoke,greedy")
  other_lr.optim.lr = 0.5
  other_n = digits.get_config("smoke,greedy")
  other_n.loop.n_train = 32
  for config in (other_lr, other_n):
    assert not adopt_first_model(config, str(tmp_path / "src"), str(tmp_path / "m"))
  assert not (tmp_path / "m").exists()
  assert adopt_first_model(greedy, str(tmp_path / "src"), str(tmp_path / "m"))
  assert (tmp_path / "m" / "checkpoints" / "4" / "state").is_dir()
  assert not adopt_first_model(greedy, str(tmp_path / "src"), str(tmp_path / "m"))  # once


def test_raising_generations_extends_a_finished_run(tmp_path):
  """3 generations, then the same command with 5: rows 1-3 stay byte-identical, rows 4-5
  equal a 5-generation run's; lowering the count is refused."""
  import json

  import theory  # noqa: PLC0415 (configs/theory.py: configs/ is on sys.path above)

  from collapse_jax import config_lib, errors

  def config(g):
    c = theory.get_config("gaussian")
    c.loop.generations = g
    c.loop.pictures = False
    return c

  def timeless(rows):
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]

  run_recursive(config(3), str(tmp_path / "run"))
  first = (tmp_path / "run" / "metrics.jsonl").read_text()
  run_recursive(config(5), str(tmp_path / "run"))
  text = (tmp_path / "run" / "metrics.jsonl").read_text()
  assert text.startswith(first) and len(text.splitlines()) == 5
  assert json.loads((tmp_path / "run" / "config.json").read_text())["loop"]["generations"] == 5
  straight = run_recursive(config(5), str(tmp_path / "straight"))
  assert timeless(read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))) == timeless(
      read_jsonl(str(tmp_path / "straight" / "metrics.jsonl")))
  assert len(straight) == 5
  with pytest.raises(errors.ConfigError, match="lowering it to 4"):
    config_lib.prepare_workdir(config(4), str(tmp_path / "run"))
