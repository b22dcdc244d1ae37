import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from collapse_jax.config_lib import base_config
from collapse_jax.data import batch_at_step, load_dataset, load_digits, make_batch_dataset, sources
from collapse_jax.data.pipeline import batch_rows
from collapse_jax.errors import DataPathError
from collapse_jax.images import from_uint8, make_grid
from collapse_jax.metrics.writer import MetricWriter, read_jsonl


def test_digits_are_embedded_and_scaled():
  images, labels = load_digits()
  assert images.shape == (1797, 8, 8, 1) and images.dtype == np.float32
  assert images.min() == -1.0 and images.max() == 1.0
  assert set(np.unique(labels)) == set(range(10))


def test_batches_are_deterministic_epoch_permutations():
  ds = make_batch_dataset(40, 8, seed=3)
  first_epoch = np.concatenate([np.asarray(ds[s]) for s in range(5)])
  assert sorted(first_epoch) == list(range(40))
  second_epoch = np.concatenate([np.asarray(ds[s]) for s in range(5, 10)])
  assert sorted(second_epoch) == list(range(40))
  assert not np.array_equal(first_epoch, second_epoch)
  again = make_batch_dataset(40, 8, seed=3)
  np.testing.assert_array_equal(np.asarray(again[7]), np.asarray(ds[7]))
  arrays = {"image": np.arange(40.0)[:, None]}
  np.testing.assert_array_equal(batch_at_step(ds, arrays, 7)["image"][:, 0], np.asarray(ds[7]))
  with pytest.raises(ValueError, match="batch_size"):
    make_batch_dataset(4, 8, seed=0)


def test_batches_computed_on_the_devices_equal_the_host_batches(seed):
  """The train programs' batches (batch_rows, traced, from the step counter) are the host
  pipeline's, across epochs (41 rows, batches of 8: 5 per epoch, one row dropped)."""
  print(f"seed {seed}")
  ds = make_batch_dataset(41, 8, seed=seed % 1000)
  rows = jax.jit(lambda step: batch_rows(jax.random.key(seed % 1000), step, 41, 8))
  for step in (0, 4, 5, 13, 99):
    np.testing.assert_array_equal(np.asarray(rows(jnp.int32(step))), np.asarray(ds[step]))


def test_grid_layout():
  images = np.stack([np.full((2, 2, 1), v) for v in (-1.0, 1.0, 0.0)])
  grid = make_grid(images, ncol=2, pad=1)
  assert grid.shape == (7, 7, 1)
  assert grid[1, 1, 0] == 0 and grid[1, 4, 0] == 255 and grid[4, 1, 0] == 128


def test_writer_truncates_rows_after_resume_step(tmp_path):
  w = MetricWriter(str(tmp_path), "train")
  for s in (10, 20, 30):
    w.write_scalars(s, {"loss": s / 10})
  w.close()
  w = MetricWriter(str(tmp_path), "train", resume_step=20)
  w.write_scalars(30, {"loss": 9.0})
  w.close()
  rows = read_jsonl(str(tmp_path / "train.jsonl"))
  assert [(r["step"], r["loss"]) for r in rows] == [(10, 1.0), (20, 2.0), (30, 9.0)]
  assert (tmp_path / "train.csv").read_text().splitlines()[0] == "step,loss"


def _data_config(name, path="", **fields):
  config = base_config()
  config.data.name, config.data.path = name, str(path)
  config.data.update(fields)
  return config


def test_tfds_mnist_and_cifar10_from_mock_data():
  with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
    mnist = load_dataset(_data_config("mnist", "/prepared/tfds"))
    cifar = load_dataset(_data_config("cifar10", "/prepared/tfds", resolution=16,
                                      max_examples=10))
    raw = tfds.data_source("cifar10", split="train", data_dir="/prepared/tfds")
    want = np.stack([np.asarray(raw[i]["image"]) for i in range(10)])
  assert mnist.images.shape == (12, 32, 32, 1) and mnist.num_classes == 10
  assert mnist.images[:, :2].max() == -1.0  # zero padding 28 -> 32
  assert mnist.labels.shape == (12,) and mnist.labels.max() < 10
  assert cifar.images.shape == (10, 16, 16, 3) and cifar.images.dtype == np.float32
  assert -1.0 <= cifar.images.min() and cifar.images.max() <= 1.0
  resized = np.stack([sources.resize_square(w, 16) for w in want])
  np.testing.assert_array_equal(cifar.images, from_uint8(resized))


def test_tfds_without_prepared_data_names_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.data.path"):
    load_dataset(_data_config("cifar10", tmp_path))


def _write_images(root, rng):
  """PNGs of assorted sizes in two class folders; returns {relative path: array}."""
  written = {}
  for cls, sizes in (("cats", [(20, 24), (16, 16)]), ("dogs", [(30, 18), (17, 17), (9, 40)])):
    os.makedirs(root / cls, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
      a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
      Image.fromarray(a).save(root / cls / f"{i}.png")
      written[f"{cls}/{i}.png"] = a
  return written


def test_image_folder_and_array_record_give_the_same_resized_images(tmp_path):
  from array_record.python.array_record_module import ArrayRecordWriter

  written = _write_images(tmp_path / "folder", np.random.default_rng(0))
  ds = load_dataset(_data_config("ffhq", tmp_path / "folder", resolution=8, labels=True))
  assert ds.images.shape == (5, 8, 8, 3) and ds.num_classes == 2
  np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 1])
  # Centre crop then PIL bicubic, image by image, in sorted path order.
  want = []
  for a in (written[k] for k in sorted(written)):
    s = min(a.shape[:2])
    top, left = (a.shape[0] - s) // 2, (a.shape[1] - s) // 2
    crop = Image.fromarray(a[top : top + s, left : left + s])
    want.append(np.asarray(crop.resize((8, 8), Image.BICUBIC)))
  np.testing.assert_array_equal(ds.images, from_uint8(np.stack(want)))

  os.makedirs(tmp_path / "records")
  writer = ArrayRecordWriter(str(tmp_path / "records" / "ffhq-00000.array_record"), "group_size:1")
  for k in sorted(written):
    writer.write((tmp_path / "folder" / k).read_bytes())
  writer.close()
  rec = load_dataset(_data_config("ffhq", tmp_path / "records", resolution=8, max_examples=4))
  np.testing.assert_array_equal(rec.images, ds.images[:4])
  assert rec.labels is None and rec.num_classes == 0


def test_local_image_errors_name_the_field(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.data.path"):
    load_dataset(_data_config("ffhq", ""))
  with pytest.raises(FileNotFoundError, match=r"config.data.path=.*does not exist"):
    load_dataset(_data_config("ffhq", tmp_path / "missing"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="holds no"):
    load_dataset(_data_config("ffhq", tmp_path / "empty"))
  _write_images(tmp_path / "flat", np.random.default_rng(1))
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "flat" / "top.png")
  with pytest.raises(ValueError, match="config.data.labels"):
    load_dataset(_data_config("ffhq", tmp_path / "flat", labels=True))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_image_file_is_named_by_its_path(tmp_path, damage):
  from array_record.python.array_record_module import ArrayRecordWriter

  _write_images(tmp_path / "folder", np.random.default_rng(2))
  bad = tmp_path / "folder" / "dogs" / "1.png"
  data = bad.read_bytes()
  bad.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a png at all")
  with pytest.raises(DataPathError, match=rf"{bad} is not a readable image .*remove or "
                                          "replace it"):
    load_dataset(_data_config("ffhq", tmp_path / "folder", resolution=8))
  os.makedirs(tmp_path / "records")
  writer = ArrayRecordWriter(str(tmp_path / "records" / "x.array_record"), "group_size:1")
  for path in sorted((tmp_path / "folder").rglob("*.png")):
    writer.write(path.read_bytes())
  writer.close()
  with pytest.raises(DataPathError, match=r"record 3 of config.data.path=.* is not a readable"):
    load_dataset(_data_config("ffhq", tmp_path / "records", resolution=8))


def test_an_empty_array_record_file_is_named(tmp_path):
  (tmp_path / "records").mkdir()
  (tmp_path / "records" / "ffhq-00000.array_record").write_bytes(b"")
  with pytest.raises(DataPathError, match=r"ffhq-00000.array_record \(0 bytes\)"):
    load_dataset(_data_config("ffhq", tmp_path / "records", resolution=8))
