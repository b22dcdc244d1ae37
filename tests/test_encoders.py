"""Flax DINOv2 and FID Inception against PyTorch (transformers / a torch definition)."""

import os

import jax
import numpy as np
import pytest
import torch
from transformers import BitImageProcessor

from collapse_jax.encoders import dinov2, inception, weights
from collapse_jax.encoders.extract import extract
from collapse_jax.encoders.load import convert, load_encoder
from collapse_jax.sharding import make_mesh
from tests.encoder_weights import DINOV2_TINY, dinov2_dir, inception_pth
from tests.torch_fid_inception import randomized

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def hf_dinov2(tmp_path_factory):
  """A dinov2-small-shaped transformers model with random weights, saved as on the hub."""
  path = str(tmp_path_factory.mktemp("dinov2"))
  return dinov2_dir(path), path


def test_dinov2_matches_transformers(hf_dinov2):
  model, path = hf_dinov2
  x = np.random.default_rng(1).normal(size=(2, 3, 224, 224)).astype(np.float32)
  with torch.no_grad():
    ref = model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
  flax_model, params = dinov2.load_dinov2(path)
  cls, patches = flax_model.apply({"params": params}, x.transpose(0, 2, 3, 1))
  assert np.abs(np.asarray(cls) - ref[:, 0]).max() < 1e-4
  assert np.abs(np.asarray(patches) - ref[:, 1:]).max() < 1e-4


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dinov2_cpu_attention_equals_dot_product_attention(dtype, batch):
  """The per-image attention the CPU runs against jax.nn.dot_product_attention, on
  fresh (B, 257, heads, 64) inputs, and `attention` lowers to it on the CPU only."""
  rng = np.random.default_rng()
  q, k, v = (jax.numpy.asarray(rng.normal(size=(batch, 257, 6, 64)), dtype) for _ in range(3))
  got = jax.jit(dinov2.attention)(q, k, v)
  want = jax.nn.dot_product_attention(*(t.astype("float32") for t in (q, k, v)))
  assert got.shape == want.shape and got.dtype == q.dtype
  tol = 3e-2 if dtype == "bfloat16" else 2e-6
  np.testing.assert_allclose(np.float32(got), want, atol=tol, rtol=tol)
  gpu = jax.jit(dinov2.attention).trace(q, k, v).lower(lowering_platforms=("cuda",)).as_text()
  assert "while" in jax.jit(dinov2.attention).lower(q, k, v).as_text()
  assert "while" not in gpu  # no per-image loop off the CPU


def test_dinov2_preprocess_matches_hf_processor():
  proc = BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                           image_mean=list(dinov2.IMAGENET_MEAN),
                           image_std=list(dinov2.IMAGENET_STD), resample=3)
  level = 1 / 255 / min(dinov2.IMAGENET_STD)
  for shape in ((32, 32, 3), (40, 36, 3)):
    images = np.random.default_rng(2).integers(0, 256, (2, *shape), dtype=np.uint8)
    ref = proc(list(images), return_tensors="np")["pixel_values"].transpose(0, 2, 3, 1)
    diff = np.abs(np.asarray(dinov2.preprocess(images)) - ref)
    assert diff.max() < 1.01 * level  # PIL's fixed-point rounding: at most one grey level
    assert (diff > 1e-4).mean() < 1e-3


def test_dinov2_features_end_to_end_bf16_sharded(hf_dinov2, tmp_path):
  """uint8 images -> converted weights -> bf16 features on 8 devices ~ the HF pipeline."""
  model, path = hf_dinov2
  images = np.random.default_rng(5).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
  with torch.no_grad():
    pixels = np.array(dinov2.preprocess(images)).transpose(0, 3, 1, 2)
    ref = model(pixel_values=torch.from_numpy(pixels)).pooler_output.numpy()
  converted = str(tmp_path / "dinov2.msgpack")
  convert("dinov2", path, converted)
  enc = load_encoder("dinov2", converted, "bfloat16")
  feats = extract(enc, images, make_mesh({"data": 8}), batch_size=8)
  cos = (feats * ref).sum(1) / np.linalg.norm(feats, axis=1) / np.linalg.norm(ref, axis=1)
  assert feats.shape == (6, 384) and cos.min() > 0.99


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


def test_inception_matches_pytorch_fid_net_sharded(tmp_path):
  pth = str(tmp_path / "pt_inception.pth")
  net = inception_pth(pth, seed=3)
  images = np.random.default_rng(4).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
  with torch.no_grad():
    ref = net(torch.from_numpy(images.transpose(0, 3, 1, 2)).float() / 255).numpy()
  # Converted weights, 8 devices, a batch that does not divide the 10 images.
  converted = str(tmp_path / "fid.msgpack")
  convert("inception", pth, converted)
  enc = load_encoder("inception", converted)
  feats = extract(enc, images, make_mesh({"data": 4, "fsdp": 2}), batch_size=8)
  assert feats.shape == (10, 2048)
  assert np.abs(feats - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
  with pytest.raises(ValueError, match="holds 'inception' weights, not 'dinov2'"):
    weights.load_converted(converted, "dinov2")


def test_inception_key_mapping_covers_the_state_dict():
  """Every conv/BN tensor of the torch net has a Flax home (fc is unused by pool3)."""
  state = {k: v.numpy() for k, v in randomized().state_dict().items()}
  params = inception.params_from_torch(state, "state dict")
  n_flax = sum(np.size(x) for x in jax.tree.leaves(params))
  n_torch = sum(v.size for k, v in state.items()
                if not k.startswith("fc.") and not k.endswith("num_batches_tracked"))
  assert n_flax == n_torch


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
