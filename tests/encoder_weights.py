"""Random-weight encoder checkpoints written with NumPy alone (no PyTorch): a DINOv2 directory
in the HF layout (config.json + model.safetensors) and a converted FID Inception file. The
PyTorch-made checkpoints the parity tests compare against are in tests/torch_weights.py."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import save_file

from collapse_jax.encoders import dinov2, inception, weights

DINOV2_SMALL = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                    patch_size=14, image_size=518, mlp_ratio=4)
DINOV2_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=14,
                   image_size=56, mlp_ratio=2)


def _hf_layout(t: np.ndarray, layout: str) -> np.ndarray:
  """The inverse of dinov2._to_flax: a Flax leaf as transformers stores it."""
  if layout == "dense":
    return t.T
  if layout == "conv":
    return t.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
  return t


def _leaf(rng: np.random.Generator, name: str, shape) -> np.ndarray:
  """Norm scales and layer scales near 1, everything else small: a net whose activations stay
  in range through every layer, as trained weights do."""
  base = 1.0 if name.endswith(("scale", "lambda1")) or "layernorm.weight" in name else 0.0
  return (base + 0.02 * rng.standard_normal(shape)).astype(np.float32)


def dinov2_dir(path: str, shape: dict = DINOV2_SMALL, seed: int = 0) -> None:
  """A DINOv2 directory as transformers' `save_pretrained` writes it, with random weights."""
  config = dinov2.Dinov2Config(**shape)
  abstract = jax.eval_shape(dinov2.Dinov2(config).init, jax.random.key(0),
                            jnp.zeros((1, config.patch_size, config.patch_size, 3)))["params"]
  rng = np.random.default_rng(seed)
  tensors = {}
  for keypath, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]:
    name, layout = dinov2._hf_key(tuple(k.key for k in keypath))
    tensors[name] = _hf_layout(_leaf(rng, name, leaf.shape), layout)
  os.makedirs(path, exist_ok=True)
  save_file(tensors, os.path.join(path, "model.safetensors"))
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(dict(model_type="dinov2", layerscale_value=1.0, **shape), f)


def inception_msgpack(path: str, seed: int = 0) -> None:
  """The FID Inception with random weights, in the converted format the loader reads."""
  abstract = jax.eval_shape(inception.FIDInception().init, jax.random.key(0),
                            jnp.zeros((1, 299, 299, 3)))["params"]
  rng = np.random.default_rng(seed)

  def leaf(keypath, a):
    name = keypath[-1].key
    if name == "var":  # batch-norm running variances are positive
      return rng.uniform(0.5, 1.5, a.shape).astype(np.float32)
    if name == "kernel":  # He-scaled, so features neither vanish nor blow up
      return (rng.standard_normal(a.shape) * np.sqrt(2 / np.prod(a.shape[:-1]))).astype(
          np.float32)
    return _leaf(rng, name, a.shape)

  weights.save_converted(path, "inception", {},
                         jax.tree_util.tree_map_with_path(leaf, abstract))
