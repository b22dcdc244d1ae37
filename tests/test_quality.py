"""Selection's quality claims (single run and over seeds), the learned feature space, and
the IDX reader."""

import gzip
import json
import os
import struct

import numpy as np
import pytest

from collapse_jax.data import idx
from collapse_jax.data.registry import load_dataset
from collapse_jax.errors import DataPathError
from collapse_jax.study import seeds, verdict


def _rows(fd, probe, entropy=(300.0, 280.0)):
  return [{"generation": g + 1, "fd_real": f, "probe_conf": p, "train_entropy": e,
           "gen_score": 100.0 - g} for g, (f, p, e) in enumerate(zip(fd, probe, entropy,
                                                                     strict=True))]


def test_quality_claims_decide_on_the_last_generation():
  vanilla = _rows((10.0, 50.0), (0.9, 0.8))
  better = _rows((10.0, 40.0), (0.9, 0.8))  # FD lower, probe equal: both hold
  worse = _rows((10.0, 60.0), (0.9, 0.7))  # FD higher, probe lower: neither
  got = {c.text: c.holds for c in verdict.quality_claims(vanilla, {"a": better, "b": worse})}
  assert got == {"quality: a keeps fd_real lower than vanilla's at generation 2": True,
                 "quality: a keeps probe_conf no lower than vanilla's at generation 2": True,
                 "quality: b keeps fd_real lower than vanilla's at generation 2": False,
                 "quality: b keeps probe_conf no lower than vanilla's at generation 2": False}
  assert "0.35" in verdict.thresholds() and "0.7" in verdict.thresholds()


def test_claims_over_seeds_use_paired_intervals(rng, tmp_path):
  """An arm whose FD sits 10 below vanilla's at every seed (vanilla's own FD varying widely)
  holds 'lower' only because the differences are paired; noise around 0 does not."""
  base = rng.uniform(100, 1000, 5)
  arms = {"vanilla": {s: _rows((0, b), (0.8, 0.8)) for s, b in enumerate(base)},
          "sel": {s: _rows((0, b - 10 + rng.normal(0, 1)), (0.8, 0.8 + rng.normal(0, .01)))
                  for s, b in enumerate(base)}}
  got = {c.text.split(" keeps ")[1].split(" than")[0]: c.holds for c in seeds.claims(arms)}
  assert got["fd_real lower"] is True
  assert got["probe_conf no lower"] is True  # not shown lower
  assert got["train_entropy higher"] is False  # equal at every seed
  for s in range(5):  # the report reads root/seed=K/<arm>/ workdirs
    for arm, by_seed in arms.items():
      d = tmp_path / f"seed={s}" / arm
      d.mkdir(parents=True)
      (d / "config.json").write_text('{"model": {"kind": "unet"}}')
      (d / "metrics.jsonl").write_text("\n".join(
          json.dumps({"step": r["generation"], **{k: float(v) for k, v in r.items()}})
          for r in by_seed[s]) + "\n")
  text = open(seeds.write(str(tmp_path))).read()
  assert "fd_real lower than vanilla's at generation 2" in text and "| vanilla | 5 |" in text
  assert "(seeds.png)" in text and (tmp_path / "seeds.png").stat().st_size > 0


def _write_idx(path, array, code):
  header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
      f">{array.ndim}i", *array.shape)
  data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_round_trips_mnist_files(rng, tmp_path, gz):
  ext = ".gz" if gz else ""
  images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
  labels = rng.integers(0, 10, 12).astype(np.uint8)
  _write_idx(str(tmp_path / f"train-images-idx3-ubyte{ext}"), images, 0x08)
  _write_idx(str(tmp_path / f"train-labels-idx1-ubyte{ext}"), labels, 0x08)
  floats = rng.normal(size=(3, 4)).astype(np.float32)
  _write_idx(str(tmp_path / "floats.idx"), floats, 0x0D)
  np.testing.assert_array_equal(idx.read_idx(str(tmp_path / "floats.idx")), floats)
  got, got_labels = idx.read_idx_split(str(tmp_path), "train")
  np.testing.assert_array_equal(got[..., 0], images)
  np.testing.assert_array_equal(got_labels, labels)
  from collapse_jax.config_lib import base_config
  config = base_config()
  config.data.name, config.data.path = "idx", str(tmp_path)
  ds = load_dataset(config)  # 28 -> 32, zero-padded as mnist, in [-1, 1]
  assert ds.images.shape == (12, 32, 32, 1) and ds.num_classes == int(labels.max()) + 1
  np.testing.assert_allclose((ds.images[:, 2:30, 2:30, 0] + 1) * 127.5, images, atol=1e-3)
  assert (ds.images[:, :2] == -1).all()
  config.data.resolution = 16
  assert load_dataset(config).images.shape == (12, 16, 16, 1)


def test_idx_errors_name_the_file_and_the_fix(tmp_path):
  path = str(tmp_path / "train-images-idx3-ubyte")
  _write_idx(path, np.zeros((4, 5, 5), np.uint8), 0x08)
  with open(path, "r+b") as f:  # truncated
    f.truncate(os.path.getsize(path) - 3)
  with pytest.raises(DataPathError, match="truncated or damaged"):
    idx.read_idx(path)
  with open(path, "wb") as f:
    f.write(b"\x89PNG....")
  with pytest.raises(DataPathError, match="not an IDX file"):
    idx.read_idx(path)
  from collapse_jax.config_lib import base_config
  config = base_config()
  config.data.name, config.data.path = "fashion_mnist", str(tmp_path / "missing")
  with pytest.raises(DataPathError, match="apt-get install dataset-fashion-mnist"):
    load_dataset(config)
  config.data.name, config.data.path = "idx", str(tmp_path / "empty")
  os.makedirs(config.data.path)
  with pytest.raises(DataPathError, match="train-images-idx3-ubyte"):
    load_dataset(config)


def test_learned_space_separates_unseen_digits_and_is_cached(tmp_path):
  """Trained on 600 digits, its 64-d features let a linear probe tell the classes of 597
  digits it never saw (chance 0.1); a second call reads the workdir's cache, equal."""
  from sklearn.linear_model import LogisticRegression

  from collapse_jax.data.digits import load_digits
  from collapse_jax.encoders.extract import extract
  from collapse_jax.encoders.learned import FEATURES, train_learned_encoder
  from collapse_jax.images import to_uint8
  from collapse_jax.sharding import make_mesh

  images, labels = load_digits()
  images = to_uint8(images)
  mesh = make_mesh({"data": -1, "fsdp": 1})
  enc = train_learned_encoder(images[:600], labels[:600], 0, str(tmp_path))
  assert len(os.listdir(tmp_path)) == 1
  fit = np.asarray(extract(enc, images[600:1200], mesh))
  test = np.asarray(extract(enc, images[1200:], mesh))
  assert fit.shape == (600, FEATURES)
  accuracy = LogisticRegression(max_iter=3000).fit(fit, labels[600:1200]).score(
      test, labels[1200:])
  print(f"held-out probe accuracy in the learned space: {accuracy:.3f}")
  assert accuracy > 0.85
  again = train_learned_encoder(images[:600], labels[:600], 0, str(tmp_path))
  assert again.name == enc.name
  np.testing.assert_array_equal(np.asarray(extract(again, images[1200:], mesh)), test)


def test_learned_features_need_labelled_heldout_rows(tmp_path):
  from collapse_jax.errors import ConfigError
  from collapse_jax.loop.recursive import run_recursive
  from configs import digits

  config = digits.get_config("smoke,greedy,learned")
  config.loop.n_heldout = 0
  with pytest.raises(ConfigError, match="features='learned'"):
    run_recursive(config, str(tmp_path / "run"))


def test_pool_fd_is_scored_on_as_many_rows_as_the_real_training_set(rng):
  """A 2N selection pool and its first N rows get the same FD and Sinkhorn divergence: both
  measures' bias falls with the sample count, so arms with 2N pools are scored on N, as is
  the held-out reference (whatever the pool factor), and so is a pool under accumulate,
  whose training set has grown past N."""
  import jax.numpy as jnp

  from collapse_jax.data.sets import ImageSet
  from collapse_jax.loop import measure
  from collapse_jax.loop.embed import Embedder
  from collapse_jax.loop.real import real_statistics
  from collapse_jax.metrics import collapse
  from collapse_jax.sharding import make_mesh, put_rows
  from configs import digits

  mesh = make_mesh({"data": -1, "fsdp": 1})
  lc = digits.get_config().loop
  image_set = lambda n: ImageSet(put_rows(rng.integers(0, 256, (n, 4, 4, 1), np.uint8), mesh),
                                 None, np.zeros(n, np.int32))
  real, held = image_set(32), image_set(40)
  stats = real_statistics(real, held, Embedder(mesh), lc)["pixels"]
  train = real.images.reshape(32, -1)
  pool = put_rows(rng.integers(0, 256, (64, 16), np.uint8), mesh)
  whole = measure._space_metrics("", "fd_real", train, pool, pool[:32], stats, mesh, True, lc)
  first = measure._space_metrics("", "fd_real", train, pool[:32], pool[:32], stats, mesh,
                                 True, lc)
  grown = jnp.concatenate([train, train])  # accumulate's second generation: 2N rows
  accumulated = measure._space_metrics("", "fd_real", grown, pool, pool[:32], stats, mesh,
                                       True, lc)
  for key in ("fd_real", "fd_real_subset", "sinkhorn"):
    assert whole[key] == pytest.approx(first[key], rel=1e-6), key
    assert accumulated[key] == pytest.approx(first[key], rel=1e-6), key
  assert whole["pool_entropy"] != first["pool_entropy"]  # the entropy keeps the whole pool
  lc2 = digits.get_config().loop
  lc2.pool_factor = 2
  stats2 = real_statistics(real, held, Embedder(mesh), lc2)["pixels"]
  assert stats2.heldout_fd == stats.heldout_fd  # the reference: N held-out rows either way
  f_held = held.images.reshape(40, -1)
  want = collapse.frechet_distance(*collapse.gaussian_stats(f_held[:32]),
                                   *collapse.gaussian_stats(train))
  assert stats.heldout_fd == pytest.approx(want, rel=1e-6)


def test_fd_is_taken_against_the_full_split_cached_once_per_set(rng, tmp_path):
  """fd_real: the pool's FD to the statistics of the dataset's full real split (NumPy float64
  moments, SciPy's sqrtm), fd_real_subset to the N-image training set; the full split's
  statistics are written once per set (its fingerprint in the name) and read back after."""
  from scipy import linalg

  from collapse_jax.data.sets import ImageSet
  from collapse_jax.loop import measure
  from collapse_jax.loop.embed import Embedder
  from collapse_jax.loop.real import real_statistics
  from collapse_jax.sharding import make_mesh, put_rows
  from configs import digits

  def fd(a, b):
    (mu1, s1), (mu2, s2) = ((x.mean(0), np.cov(x.T)) for x in (a, b))
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))

  mesh = make_mesh({"data": -1, "fsdp": 1})
  lc = digits.get_config().loop
  full = rng.integers(0, 256, (300, 3, 3, 1), np.uint8)  # the split; its first 32 rows: N
  real = ImageSet(put_rows(full[:32], mesh), None, np.zeros(32, np.int32))
  held = ImageSet(put_rows(full[32:72], mesh), None, np.zeros(40, np.int32))
  cache = str(tmp_path / "features")
  stats = real_statistics(real, held, Embedder(mesh, cache_dir=cache), lc, full=full)["pixels"]
  f_full = full.reshape(300, -1).astype(np.float64)
  np.testing.assert_allclose(stats.mean, f_full.mean(0), rtol=1e-6)
  np.testing.assert_allclose(stats.cov, np.cov(f_full.T), rtol=1e-5, atol=1e-3)
  pool = rng.integers(0, 256, (64, 9)).astype(np.uint8)  # a 2N pool: scored on its first N
  row = measure._space_metrics("", "fd_real", put_rows(f_full[:32], mesh),
                               put_rows(pool, mesh), put_rows(pool[:32], mesh), stats, mesh,
                               True, lc)
  f_pool = pool[:32].astype(np.float64)
  assert row["fd_real"] == pytest.approx(fd(f_pool, f_full), rel=1e-5)
  assert row["fd_real_subset"] == pytest.approx(fd(f_pool, f_full[:32]), rel=1e-5)
  assert row["fd_real_heldout"] == pytest.approx(fd(f_full[32:64], f_full), rel=1e-5)
  (path,) = [os.path.join(cache, n) for n in os.listdir(cache) if "_stats_" in n]
  np.savez(path, mean=stats.mean + 1.0, cov=stats.cov)  # a marked cache: read, not recomputed
  again = real_statistics(real, held, Embedder(mesh, cache_dir=cache), lc, full=full)["pixels"]
  np.testing.assert_allclose(again.mean, stats.mean + 1.0)
  other = full.copy()
  other[0] ^= 1  # another split: another file
  real_statistics(real, held, Embedder(mesh, cache_dir=cache), lc, full=other)
  assert len([n for n in os.listdir(cache) if "_stats_" in n]) == 2
