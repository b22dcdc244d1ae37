"""Flax DINOv2 and FID Inception against PyTorch (transformers / a torch definition).

They need the `parity` extra (torch, transformers), which `make test-min` installs on
Python 3.11; where torch is missing they skip with that reason."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the parity references need PyTorch: `make test-min` (Python 3.11) has it")
transformers = pytest.importorskip("transformers", reason="the parity references need it")

from collapse_jax.encoders import dinov2, inception, weights  # noqa: E402
from collapse_jax.encoders.extract import extract  # noqa: E402
from collapse_jax.encoders.load import convert, load_encoder  # noqa: E402
from collapse_jax.sharding import make_mesh  # noqa: E402
from tests.torch_fid_inception import randomized  # noqa: E402
from tests.torch_weights import dinov2_torch_dir, inception_pth  # noqa: E402

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def hf_dinov2(tmp_path_factory):
  """A dinov2-small-shaped transformers model with random weights, saved as on the hub."""
  path = str(tmp_path_factory.mktemp("dinov2"))
  return dinov2_torch_dir(path), path


def test_dinov2_matches_transformers(hf_dinov2):
  model, path = hf_dinov2
  x = np.random.default_rng(1).normal(size=(2, 3, 224, 224)).astype(np.float32)
  with torch.no_grad():
    ref = model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
  flax_model, params = dinov2.load_dinov2(path)
  cls, patches = flax_model.apply({"params": params}, x.transpose(0, 2, 3, 1))
  assert np.abs(np.asarray(cls) - ref[:, 0]).max() < 1e-4
  assert np.abs(np.asarray(patches) - ref[:, 1:]).max() < 1e-4


def test_dinov2_preprocess_matches_hf_processor():
  proc = transformers.BitImageProcessor(
      size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
      image_mean=list(dinov2.IMAGENET_MEAN), image_std=list(dinov2.IMAGENET_STD), resample=3)
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
