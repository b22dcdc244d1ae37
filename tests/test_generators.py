"""Closed-form generators and vector data against NumPy/SciPy references; the interface."""

import json
import os
import sys

import jax
import numpy as np
import pytest
from scipy import stats

from collapse_jax import config_lib
from collapse_jax.data import synthetic
from collapse_jax.data.sets import ImageSet
from collapse_jax.generators import KINDS, make_generator
from collapse_jax.generators.memorizer import OptimalDenoiser
from collapse_jax.loop.recursive import run_recursive
from collapse_jax.loop.select import make_select_fn
from collapse_jax.sharding import make_mesh, put_rows, to_host

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "configs"))
import theory as theory_config  # noqa: E402


def vector_set(x, mesh, labels=None):
  return ImageSet(put_rows(np.asarray(x, np.float32), mesh), labels, np.zeros(len(x), np.int32))


def make(variant, shape, mesh, num_classes=0, **model):
  config = theory_config.get_config(variant)
  for k, v in model.items():
    config.model[k] = v
  return make_generator(config, shape, num_classes, mesh)


@pytest.mark.parametrize("devices", [1, 8])
def test_gaussian_fit_equals_numpy_mle_and_samples_it(devices, rng):
  mesh = make_mesh(devices=jax.devices()[:devices])
  # A random rotation and scales in [0.5, 2]: a covariance with condition number <= 16, as a
  # raw normal mixing matrix can be near-singular, where float32 log-determinants (the
  # model's entropy) lose digits the test would then blame on the fit.
  mix = np.linalg.qr(rng.normal(size=(3, 3)))[0] * rng.uniform(0.5, 2.0, 3)
  x = rng.normal(size=(64, 3)) @ mix + rng.normal(size=3)
  x = x.astype(np.float32).astype(np.float64)  # the loop's rows are float32
  gen = make("gaussian", (3,), mesh)
  fitted = gen.fit(vector_set(x, mesh), jax.random.key(0), generation=1, workdir="")
  mu, cov = x.mean(0), np.cov(x.T, bias=True)
  np.testing.assert_allclose(fitted.metrics["model_entropy"],
                             stats.multivariate_normal(mu, cov).entropy(), atol=2e-4)
  np.testing.assert_allclose(fitted.metrics["model_trace"], np.trace(cov), rtol=1e-5)
  np.testing.assert_allclose(fitted.metrics["model_mean_sq"], mu @ mu, rtol=1e-5)
  s = to_host(gen.sample(fitted, jax.random.key(int(rng.integers(1 << 30))), 40_000))
  assert s.dtype == np.float32 and s.shape == (40_000, 3)
  sd = np.sqrt(np.diag(cov) / 40_000)
  np.testing.assert_array_less(np.abs(s.mean(0) - mu), 5 * sd)  # exact sampling
  np.testing.assert_allclose(np.cov(s.T), cov, atol=0.05 * np.abs(cov).max())


def numpy_optimal_eps(x_t, abar, rows, labels=None, row_labels=None):
  """float64 brute force: posterior weights over the rows, E[x0 | x_t], eps."""
  x_t, rows = x_t.astype(np.float64), rows.astype(np.float64)
  d2 = ((x_t[:, None] - np.sqrt(abar)[:, None, None] * rows[None]) ** 2).sum(-1)
  logw = -d2 / (2 * (1 - abar))[:, None]
  if labels is not None:
    logw = np.where(row_labels[None] == labels[:, None], logw, -np.inf)
  w = np.exp(logw - logw.max(1, keepdims=True))
  x0 = (w / w.sum(1, keepdims=True)) @ rows
  return (x_t - np.sqrt(abar)[:, None] * x0) / np.sqrt(1 - abar)[:, None]


def test_memorizer_denoiser_equals_numpy_posterior(rng):
  rows = rng.normal(size=(50, 6)).astype(np.float32)
  row_labels = rng.integers(3, size=50).astype(np.int32)
  t = rng.integers(0, 1000, size=32).astype(np.int32)
  x = rng.normal(size=(32, 6)).astype(np.float32)
  den = OptimalDenoiser(1000, 1e-4, 0.02, num_classes=3)
  abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))[t]
  params = {"data": rows, "labels": row_labels}
  got = np.asarray(den.apply({"params": params}, x, t))
  np.testing.assert_allclose(got, numpy_optimal_eps(x, abar, rows), atol=2e-3, rtol=1e-3)
  labels = rng.integers(4, size=32).astype(np.int32)  # 3 = the "null" label: every row
  got = np.asarray(den.apply({"params": params}, x, t, labels))
  want = np.where((labels == 3)[:, None], numpy_optimal_eps(x, abar, rows),
                  numpy_optimal_eps(x, abar, rows, np.minimum(labels, 2), row_labels))
  np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-3)


def test_memorizer_copies_training_rows_and_greedy_keeps_every_distinct_copy(devices, rng):
  """From a 2N pool of copies, greedy selection keeps all distinct rows before a repeat."""
  mesh = make_mesh()
  config = theory_config.get_config("memorizer")
  config.loop.selection = "greedy"
  select = make_select_fn(config.loop, mesh, lambda images: images.reshape(len(images), -1)
                          .astype(np.float32))
  gen = make_generator(config, (8, 8, 1), 10, mesh)
  for types in (8, 48):  # pool with fewer, and with more, distinct rows than N = 32
    base = rng.integers(0, 256, size=(types, 8, 8, 1)).astype(np.uint8)
    train = base[rng.integers(types, size=32)]
    fitted = gen.fit(ImageSet(put_rows(train, mesh), None, np.zeros(32, np.int32)),
                     jax.random.key(0), generation=1, workdir="")
    pool = gen.sample(fitted, jax.random.key(int(rng.integers(1 << 30))), 64)
    host = to_host(pool).reshape(64, -1)
    assert all((host[i] == train.reshape(32, -1)).all(1).any() for i in range(64))  # copies
    picked = select(ImageSet(pool, None, np.ones(64, np.int32)), 32, rng)
    distinct = len(np.unique(host, axis=0))
    assert len(np.unique(host[picked], axis=0)) == min(32, distinct)


def test_kde_draws_a_row_plus_bandwidth_noise(rng):
  mesh = make_mesh()
  grid = np.stack(np.meshgrid(np.arange(4), np.arange(4)), -1).reshape(16, 2)
  rows = 10.0 * grid + rng.uniform(-1, 1, size=(16, 2))  # >= 8 apart: the nearest is the source
  gen = make("kde", (2,), mesh, bandwidth=0.25)
  fitted = gen.fit(vector_set(rows, mesh), jax.random.key(0), generation=1, workdir="")
  s = to_host(gen.sample(fitted, jax.random.key(int(rng.integers(1 << 30))), 32_000))
  d = np.linalg.norm(s[:, None] - rows[None], axis=-1)
  near = d.argmin(1)
  noise = s - rows[near]
  assert stats.chisquare(np.bincount(near, minlength=16)).pvalue > 1e-4  # uniform rows
  np.testing.assert_allclose(noise.std(0), 0.25, rtol=0.03)
  assert stats.kstest(noise[:, 0] / 0.25, "norm").pvalue > 1e-4


def test_synthetic_data_have_their_stated_laws(rng):
  x, cov = synthetic.gaussian(200_000, 4, 2.0, 1.0, seed=rng.integers(99))
  np.testing.assert_allclose(np.linalg.eigvalsh(cov), sorted(4.0 / np.arange(1, 5)), rtol=1e-9)
  np.testing.assert_allclose(np.cov(x.T), cov, atol=0.03)
  x, labels, means = synthetic.mixture(50_000, 3, 5, 4.0, 0.5, seed=3)
  assert x.dtype == np.float32 and labels.max() == 4
  for k in range(5):
    np.testing.assert_allclose(x[labels == k].mean(0), means[k], atol=0.03)
    np.testing.assert_allclose(x[labels == k].std(0), 0.5, rtol=0.05)


def test_vector_loop_keeps_float_rows_and_draws_scatter_plots(tmp_path):
  """The MLP diffusion model on a 2-D mixture, greedy from a 2N pool, pictures on."""
  config = theory_config.get_config("mog,smoke,greedy")
  rows = run_recursive(config, str(tmp_path))
  assert [r["generation"] for r in rows] == [1, 2]
  assert all(np.isfinite(r["train_entropy"]) and r["gen_score"] > 0 for r in rows)
  assert (tmp_path / "gen_02" / "scatter.png").exists()
  assert "gen_01/scatter.png" in (tmp_path / "report.md").read_text()
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["data"]["name"] == "mog" and saved["data"]["dim"] == 2
  assert saved["model"]["kind"] == "mlp"


def test_every_kind_runs_under_every_paradigm_and_selection(tmp_path):
  for kind, paradigm, selection in (("gaussian", "accumulate", "threshold"),
                                    ("kde", "fresh", "random"),
                                    ("memorizer", "accumulate_all", "greedy")):
    config = theory_config.get_config("gaussian,smoke")
    config.model.kind = kind
    config.loop.paradigm, config.loop.selection = paradigm, selection
    config.loop.pool_factor = 2
    config.loop.fresh_fraction = 0.5
    config.loop.n_train = 32
    rows = run_recursive(config, str(tmp_path / kind))
    assert [r["generation"] for r in rows] == [1, 2], kind
    assert ("model_entropy" in rows[0]) == (kind == "gaussian")


@pytest.mark.parametrize("change,field", [
    ({"model.kind": "vae"}, "config.model.kind"),
    ({"data.name": "gaussian", "sample.clip_x0": False}, "config.model.kind"),  # UNet, vectors
    ({"data.name": "gaussian", "model.kind": "mlp"}, "config.sample.clip_x0"),
    ({"model.kind": "mlp"}, "config.model.kind"),  # MLP on images
    ({"data.name": "mog", "model.kind": "kde", "sample.clip_x0": False,
      "features": "dinov2"}, "config.features"),
    ({"model.kind": "kde", "model.bandwidth": 0.0}, "config.model.bandwidth"),
])
def test_bad_generator_config_names_the_field(tmp_path, change, field):
  config = config_lib.base_config()
  config.data.name = "digits"
  for k, v in change.items():
    section, name = k.split(".") if "." in k else (None, k)
    if section:
      config[section][name] = v
    else:
      config[name] = v
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    run_recursive(config, str(tmp_path))
  assert not (tmp_path / "config.json").exists()


def test_kinds_table_is_the_one_seam():
  """The loop imports the generator registry, never a model or its training."""
  import ast

  import collapse_jax.loop.recursive as loop

  assert set(KINDS) == {"unet", "mlp", "gaussian", "memorizer", "kde"}
  assert set(KINDS) == set(config_lib.MODEL_KINDS)  # the config validates the same names
  tree = ast.parse(open(loop.__file__).read())
  imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
  imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
  assert "collapse_jax.generators" in imported
  banned = {"collapse_jax.models", "collapse_jax.models.unet", "collapse_jax.diffusion.fit",
            "collapse_jax.diffusion.generate", "collapse_jax.diffusion.job",
            "collapse_jax.generators.diffusion"}
  assert not imported & banned, imported & banned
