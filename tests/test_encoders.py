"""The Flax encoders' own pieces: the CPU attention, the loaders' messages, the embedder."""

import os

import jax
import numpy as np
import pytest

from collapse_jax.encoders import dinov2
from collapse_jax.encoders.extract import extract
from collapse_jax.sharding import make_mesh
from tests.encoder_weights import DINOV2_TINY, dinov2_dir


@pytest.fixture(scope="module")
def hf_dinov2(tmp_path_factory):
  """A dinov2-small-shaped directory with random weights, in the hub's layout."""
  path = str(tmp_path_factory.mktemp("dinov2"))
  dinov2_dir(path)
  return None, path


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dinov2_cpu_attention_equals_dot_product_attention(dtype, batch, rng):
  """The per-image attention the CPU runs against jax.nn.dot_product_attention, on
  fresh (B, 257, heads, 64) inputs, and `attention` lowers to it on the CPU only."""
  q, k, v = (jax.numpy.asarray(rng.normal(size=(batch, 257, 6, 64)), dtype) for _ in range(3))
  got = jax.jit(dinov2.attention)(q, k, v)
  want = jax.nn.dot_product_attention(*(t.astype("float32") for t in (q, k, v)))
  assert got.shape == want.shape and got.dtype == q.dtype
  tol = 3e-2 if dtype == "bfloat16" else 2e-6
  np.testing.assert_allclose(np.float32(got), want, atol=tol, rtol=tol)
  gpu = jax.jit(dinov2.attention).trace(q, k, v).lower(lowering_platforms=("cuda",)).as_text()
  assert "while" in jax.jit(dinov2.attention).lower(q, k, v).as_text()
  assert "while" not in gpu  # no per-image loop off the CPU


def test_dinov2_loader_names_bad_tensors(hf_dinov2, tmp_path):
  from safetensors.numpy import load_file, save_file

  _, path = hf_dinov2
  tensors = load_file(os.path.join(path, "model.safetensors"))
  with pytest.raises(FileNotFoundError, match="config.features_weights"):
    dinov2.load_dinov2(str(tmp_path))
  os.symlink(os.path.join(path, "config.json"), tmp_path / "config.json")
  name = "encoder.layer.3.mlp.fc1.weight"
  save_file({k: v for k, v in tensors.items() if k != name}, str(tmp_path / "model.safetensors"))
  with pytest.raises(ValueError, match=f"missing {name}"):
    dinov2.load_dinov2(str(tmp_path))
  save_file(tensors | {name: tensors[name][:, :10].copy()}, str(tmp_path / "model.safetensors"))
  with pytest.raises(ValueError, match=rf"{name} has shape \(1536, 10\)"):
    dinov2.load_dinov2(str(tmp_path))


def test_embedder_memoises_recent_sets_and_caches_real_features(tmp_path, monkeypatch):
  from collapse_jax.loop import embed

  dinov2_dir(str(tmp_path / "tiny"), DINOV2_TINY)
  calls = []
  monkeypatch.setattr(embed, "extract", lambda *a, **k: calls.append(1) or extract(*a, **k))
  e = embed.Embedder(make_mesh({"data": 8}), dinov2_weights=str(tmp_path / "tiny"),
                     batch_size=8, cache_dir=str(tmp_path / "features"))
  rng = np.random.default_rng(6)
  sets = [rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8) for _ in range(embed.MEMO_SIZE + 1)]
  first = e("dinov2", sets[0])
  np.testing.assert_array_equal(e("dinov2", sets[0].copy()), first)
  assert len(calls) == 1
  for s in sets[1:]:
    e("dinov2", s)
  assert len(calls) == embed.MEMO_SIZE + 1
  np.testing.assert_array_equal(e("dinov2", sets[0]), first)  # evicted: computed again
  assert len(calls) == embed.MEMO_SIZE + 2
  real = e.cached("dinov2", sets[1])
  fresh = embed.Embedder(e.mesh, dinov2_weights="/unused", cache_dir=str(tmp_path / "features"))
  np.testing.assert_array_equal(fresh.cached("dinov2", sets[1]), real)  # read from disk
