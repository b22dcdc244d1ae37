"""DINOv2 ViT (ViT-S/14 = `facebook/dinov2-small`) in Flax, with the Hugging Face weights.

The network matches transformers' `Dinov2Model`: a 14x14 patch embedding, a CLS token,
position embeddings resized bicubically (PyTorch's a = -0.75, no antialias) to the input's
patch grid, pre-norm blocks with layer scale, and a final LayerNorm. `__call__` returns the
CLS feature (384-d for ViT-S) and the patch tokens. Preprocessing follows the HF image
processor (shortest edge 256, bicubic, centre crop 224, ImageNet normalisation).
"""

import dataclasses
import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from collapse_jax import precision
from collapse_jax.encoders import weights
from collapse_jax.encoders.extract import Encoder
from collapse_jax.encoders.resize import resize_hw
from collapse_jax.errors import DataPathError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Dinov2Config:
  """The fields of a HF `config.json` that shape the network (defaults: dinov2-small)."""

  hidden_size: int = 384
  num_hidden_layers: int = 12
  num_attention_heads: int = 6
  mlp_ratio: int = 4
  patch_size: int = 14
  image_size: int = 518
  layer_norm_eps: float = 1e-6

  @classmethod
  def from_hf(cls, d: dict) -> "Dinov2Config":
    if d.get("use_swiglu_ffn") or d.get("num_register_tokens", 0):
      raise ValueError("SwiGLU and register-token DINOv2 variants are not supported; use "
                       "facebook/dinov2-small/base/large.")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def _attention_per_image(q, k, v):
  """Softmax attention one image at a time (`lax.map`), all heads of an image in one batched
  product: on XLA:CPU 3x the rate of one (batch x heads) batched product, whose (257 x 64)
  slices run at ~20 GFLOP/s (benchmarks/RESULTS.md). Scores and softmax in float32."""
  scale = 1.0 / math.sqrt(q.shape[-1])
  prec = precision.for_dtype(q.dtype)

  def one(args):
    qi, ki, vi = args  # (T, heads, head_dim)
    s = jnp.einsum("qhd,khd->hqk", qi, ki, preferred_element_type=jnp.float32,
                   precision=prec) * scale
    p = jax.nn.softmax(s, axis=-1).astype(vi.dtype)
    return jnp.einsum("hqk,khd->qhd", p, vi, precision=prec)

  return jax.lax.map(one, (q, k, v))


def _fused_attention(q, k, v):
  """jax's `dot_product_attention` (cuDNN's on a GPU for 16-bit inputs), its products at
  full float32 for float32 inputs (it takes no precision argument)."""
  exact = precision.for_dtype(q.dtype) is not None
  with jax.default_matmul_precision("highest" if exact else None):
    return jax.nn.dot_product_attention(q, k, v)


def attention(q, k, v, cpu_kernels: bool = True):
  """(B, T, heads, head_dim) softmax attention: per image on the CPU, jax's fused
  `dot_product_attention` on every other platform (cuDNN's on a GPU) and, without
  `cpu_kernels`, on the CPU too (what a cost model counts whole: it sees a loop once)."""
  if not cpu_kernels:
    return _fused_attention(q, k, v)
  return jax.lax.platform_dependent(q, k, v, cpu=_attention_per_image,
                                    default=_fused_attention)


class Block(nn.Module):
  """Pre-norm transformer block with layer scale (DINOv2)."""

  config: Dinov2Config
  dtype: jnp.dtype = jnp.float32
  cpu_kernels: bool = True

  @nn.compact
  def __call__(self, x):
    c = self.config
    heads, head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
    prec = precision.for_dtype(self.dtype)
    dense = functools.partial(nn.Dense, dtype=self.dtype, precision=prec)
    norm = functools.partial(nn.LayerNorm, epsilon=c.layer_norm_eps, dtype=self.dtype)
    scale = lambda name: self.param(name, nn.initializers.ones, (c.hidden_size,))

    h = norm(name="norm1")(x)
    split = lambda t: t.reshape(*t.shape[:2], heads, head_dim)
    q, k, v = (split(dense(c.hidden_size, name=n)(h)) for n in ("q_proj", "k_proj", "v_proj"))
    h = attention(q, k, v, self.cpu_kernels).reshape(x.shape[:2] + (c.hidden_size,))
    x = x + scale("layer_scale1") * dense(c.hidden_size, name="o_proj")(h)

    h = norm(name="norm2")(x)
    h = nn.gelu(dense(c.hidden_size * c.mlp_ratio, name="fc1")(h), approximate=False)
    return x + scale("layer_scale2") * dense(c.hidden_size, name="fc2")(h)


class Dinov2(nn.Module):
  """Images (B, H, W, 3), already normalised -> (CLS (B, D), patch tokens (B, h*w, D))."""

  config: Dinov2Config = Dinov2Config()
  dtype: jnp.dtype = jnp.float32
  cpu_kernels: bool = True  # False: the CPU runs the other platforms' attention

  @nn.compact
  def __call__(self, pixels):
    c = self.config
    b, h, w, _ = pixels.shape
    p = c.patch_size
    x = nn.Conv(c.hidden_size, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype,
                precision=precision.for_dtype(self.dtype), name="patch_embed")(pixels)
    gh, gw = h // p, w // p
    x = x.reshape(b, gh * gw, c.hidden_size)
    cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, c.hidden_size))
    grid = c.image_size // p
    pos = self.param("pos_embed", nn.initializers.normal(0.02), (1, 1 + grid**2, c.hidden_size))
    patch_pos = resize_hw(pos[0, 1:].reshape(grid, grid, c.hidden_size), gh, gw, "bicubic")
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, c.hidden_size)).astype(x.dtype), x], 1)
    x = x + jnp.concatenate([pos[:, :1], patch_pos.reshape(1, gh * gw, -1)], 1).astype(x.dtype)
    for i in range(c.num_hidden_layers):
      x = Block(c, self.dtype, self.cpu_kernels, name=f"layer_{i}")(x)
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=jnp.float32, name="norm")(x)
    return x[:, 0], x[:, 1:]


def preprocess(images: jax.Array, resize: int = 256, crop: int = 224) -> jax.Array:
  """uint8-valued images (B, H, W, 3) -> the HF processor's input: shortest edge `resize`
  (bicubic, in PIL's two 8-bit passes), centre `crop`, ImageNet mean/std."""
  b, h, w, ch = images.shape
  short, long = (h, w) if h <= w else (w, h)
  size_long = int(resize * long / short)
  new_h, new_w = (resize, size_long) if h <= w else (size_long, resize)
  x = images.astype(jnp.float32)
  # PIL resizes width then height, rounding to 8 bits after each pass.
  for shape in ((b, h, new_w, ch), (b, new_h, new_w, ch)):
    x = jnp.clip(jnp.round(jax.image.resize(x, shape, "cubic")), 0, 255)
  top, left = (new_h - crop) // 2, (new_w - crop) // 2
  x = x[:, top : top + crop, left : left + crop] / 255.0
  return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


_ATTENTION_NAMES = {  # transformers 4.x / hub checkpoints -> transformers 5 names
    "attention.attention.query": "attention.q_proj",
    "attention.attention.key": "attention.k_proj",
    "attention.attention.value": "attention.v_proj",
    "attention.output.dense": "attention.o_proj",
}


def _hf_key(path: tuple[str, ...]) -> tuple[str, str]:
  """Flax param path -> (HF tensor name, layout) with layout in {'', 'dense', 'conv'}."""
  *mods, leaf = path
  if mods == [] and leaf == "cls_token":
    return "embeddings.cls_token", ""
  if mods == [] and leaf == "pos_embed":
    return "embeddings.position_embeddings", ""
  if mods == ["patch_embed"]:
    base = "embeddings.patch_embeddings.projection"
    return (f"{base}.weight", "conv") if leaf == "kernel" else (f"{base}.bias", "")
  if mods == ["norm"]:
    return f"layernorm.{'weight' if leaf == 'scale' else 'bias'}", ""
  layer = f"encoder.layer.{mods[0].split('_')[1]}"
  if not mods[1:]:
    return f"{layer}.{leaf}.lambda1", ""
  mod = mods[1]
  if mod.startswith("norm"):
    return f"{layer}.{mod}.{'weight' if leaf == 'scale' else 'bias'}", ""
  prefix = f"{layer}.attention.{mod}" if mod.endswith("_proj") else f"{layer}.mlp.{mod}"
  return (f"{prefix}.weight", "dense") if leaf == "kernel" else (f"{prefix}.bias", "")


def _to_flax(t: np.ndarray, layout: str) -> np.ndarray:
  if layout == "dense":
    return t.T
  if layout == "conv":
    return t.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
  return t


def params_from_hf(tensors: dict[str, np.ndarray], config: Dinov2Config, source: str):
  """Maps HF tensor names (transformers 4 or 5 spelling) onto the Flax parameter tree."""
  tensors = {k.removeprefix("dinov2."): v for k, v in tensors.items()}
  for old, new in _ATTENTION_NAMES.items():
    tensors = {k.replace(old, new): v for k, v in tensors.items()}
  abstract = jax.eval_shape(Dinov2(config).init, jax.random.key(0),
                            jnp.zeros((1, config.patch_size, config.patch_size, 3)))["params"]
  return weights.fill_tree(abstract, tensors, _hf_key, _to_flax, source)


def load_dinov2(path: str, dtype=jnp.float32) -> tuple[Dinov2, dict]:
  """(model, params) from a HF directory (config.json + model.safetensors) or a file made by
  scripts/convert_weights.py."""
  if os.path.isdir(path):
    cfg_path, st_path = os.path.join(path, "config.json"), os.path.join(path, "model.safetensors")
    for p in (cfg_path, st_path):
      if not os.path.exists(p):
        raise DataPathError(
            f"DINOv2 weights: {p} is missing. Point config.features_weights at a local copy "
            "of the HF facebook/dinov2-small directory (config.json + model.safetensors).")
    with open(cfg_path) as f:
      config = Dinov2Config.from_hf(json.load(f))
    params = params_from_hf(weights.read_safetensors(st_path), config, st_path)
  else:
    meta, params = weights.load_converted(path, "dinov2")
    config = Dinov2Config(**meta)
  return Dinov2(config, dtype=dtype), params


def dinov2_encoder(path: str, dtype=jnp.float32) -> Encoder:
  """The paper's DINOv2 feature: the CLS token of HF-preprocessed images."""
  model, params = load_dinov2(path, dtype)
  return Encoder("dinov2", model, params, preprocess, pick=lambda out: out[0])
