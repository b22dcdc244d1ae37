import numpy as np
import pytest

from collapse_jax.data import batch_at_step, load_digits, make_batch_dataset
from collapse_jax.images import make_grid
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
