"""The FID Inception-v3 (pytorch-fid's port of the TF 2015-12-05 graph) in Flax.

Images are resized bilinearly to 299x299 (PyTorch semantics), scaled to [-1, 1], and run up
to the 2048-d pool3 layer. The FID variants of the blocks differ from torchvision's
Inception-v3: average pools exclude padding, and the last block max-pools its pool branch.
Weights: pytorch-fid's `pt_inception-2015-12-05-*.pth` state dict (or its conversion).
"""

import functools
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

BN_EPS = 1e-3


class BasicConv(nn.Module):
  """Conv (no bias) + frozen BatchNorm + ReLU; `padding` is PyTorch's (ph, pw)."""

  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel
    w = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features))
    ph, pw = self.padding
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), w.astype(self.dtype), (self.stride, self.stride),
        ((ph, ph), (pw, pw)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=precision.for_dtype(self.dtype))
    ones, zeros = nn.initializers.ones, nn.initializers.zeros
    scale = self.param("scale", ones, (self.features,))
    bias = self.param("bias", zeros, (self.features,))
    mean = self.param("mean", zeros, (self.features,))
    var = self.param("var", ones, (self.features,))
    mult = scale * jax.lax.rsqrt(var + BN_EPS)
    return nn.relu(y * mult.astype(y.dtype) + (bias - mean * mult).astype(y.dtype))


def _avg_pool(x):
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x, stride=2, pad=0):
  return nn.max_pool(x, (3, 3), (stride, stride), ((pad, pad), (pad, pad)))


class InceptionA(nn.Module):
  pool_features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv, dtype=self.dtype)
    b1 = conv(64, (1, 1), name="branch1x1")(x)
    b5 = conv(48, (1, 1), name="branch5x5_1")(x)
    b5 = conv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = conv(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = conv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool(x))
    return jnp.concatenate([b1, b5, b3, bp], -1)


class InceptionB(nn.Module):
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv, dtype=self.dtype)
    b3 = conv(384, (3, 3), stride=2, name="branch3x3")(x)
    bd = conv(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = conv(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool(x).astype(b3.dtype)], -1)


class InceptionC(nn.Module):
  c7: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv, dtype=self.dtype)
    c7 = self.c7
    b1 = conv(192, (1, 1), name="branch1x1")(x)
    b7 = conv(c7, (1, 1), name="branch7x7_1")(x)
    b7 = conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = conv(c7, (1, 1), name="branch7x7dbl_1")(x)
    bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = conv(192, (1, 1), name="branch_pool")(_avg_pool(x))
    return jnp.concatenate([b1, b7, bd, bp], -1)


class InceptionD(nn.Module):
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv, dtype=self.dtype)
    b3 = conv(192, (1, 1), name="branch3x3_1")(x)
    b3 = conv(320, (3, 3), stride=2, name="branch3x3_2")(b3)
    b7 = conv(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = conv(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool(x).astype(b3.dtype)], -1)


class InceptionE(nn.Module):
  """`max_pool_branch`: FIDInceptionE_2 (the last block) max-pools, E_1 average-pools."""

  max_pool_branch: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(BasicConv, dtype=self.dtype)
    b1 = conv(320, (1, 1), name="branch1x1")(x)
    b3 = conv(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = conv(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = conv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], -1)
    pooled = _max_pool(x, stride=1, pad=1) if self.max_pool_branch else _avg_pool(x)
    bp = conv(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], -1)


class FIDInception(nn.Module):
  """Images (B, H, W, 3) in [0, 1] -> pool3 features (B, 2048)."""

  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images):
    conv = functools.partial(BasicConv, dtype=self.dtype)
    x = resize_hw(images.astype(jnp.float32), 299, 299, "bilinear") * 2 - 1
    x = conv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
    x = conv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = _max_pool(conv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x))
    x = conv(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = _max_pool(conv(192, (3, 3), name="Conv2d_4a_3x3")(x))
    x = InceptionA(32, self.dtype, name="Mixed_5b")(x)
    x = InceptionA(64, self.dtype, name="Mixed_5c")(x)
    x = InceptionA(64, self.dtype, name="Mixed_5d")(x)
    x = InceptionB(self.dtype, name="Mixed_6a")(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(c7, self.dtype, name=name)(x)
    x = InceptionD(self.dtype, name="Mixed_7a")(x)
    x = InceptionE(False, self.dtype, name="Mixed_7b")(x)
    x = InceptionE(True, self.dtype, name="Mixed_7c")(x)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


_BN_NAMES = {"scale": "bn.weight", "bias": "bn.bias", "mean": "bn.running_mean",
             "var": "bn.running_var"}


def _torch_key(path: tuple[str, ...]) -> tuple[str, str]:
  *mods, leaf = path
  prefix = ".".join(mods)
  if leaf == "kernel":
    return f"{prefix}.conv.weight", "conv"
  return f"{prefix}.{_BN_NAMES[leaf]}", ""


def _to_flax(t: np.ndarray, layout: str) -> np.ndarray:
  return t.transpose(2, 3, 1, 0) if layout == "conv" else t


def params_from_torch(tensors: dict[str, np.ndarray], source: str):
  """Maps a pytorch-fid / torchvision Inception-v3 state dict onto the Flax tree."""
  abstract = jax.eval_shape(FIDInception().init, jax.random.key(0),
                            jnp.zeros((1, 299, 299, 3)))["params"]
  return weights.fill_tree(abstract, tensors, _torch_key, _to_flax, source)


def load_inception(path: str, dtype=jnp.float32) -> tuple[FIDInception, dict]:
  """(model, params) from pytorch-fid's .pth (needs torch) or its converted msgpack file."""
  if path.endswith((".pth", ".pt")):
    if not os.path.exists(path):
      raise DataPathError(f"FID Inception weights: {path} does not exist. Set "
                              "config.eval.fid_weights to a local pytorch-fid .pth or its "
                              "conversion (scripts/convert_weights.py).")
    params = params_from_torch(weights.read_torch(path), path)
  else:
    _, params = weights.load_converted(path, "inception")
  return FIDInception(dtype), params


def inception_encoder(path: str, dtype=jnp.float32) -> Encoder:
  """pool3 features of uint8 images, as pytorch-fid computes them."""
  model, params = load_inception(path, dtype)
  return Encoder("inception", model, params, lambda x: x.astype(jnp.float32) / 255.0)
