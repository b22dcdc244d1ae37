"""A Flax UNet shaped like diffusers' `UNet2DModel`, the paper's DDPM backbone.

Same blocks, skip wiring and parameter shapes as diffusers (ResNet blocks with a time
projection, self-attention at chosen levels, conv down/up-sampling, GroupNorm), so a preset
built with the paper's settings has exactly diffusers' parameter count.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from collapse_jax.models import conv as conv_lib
from collapse_jax.models.norm import GroupNorm
from collapse_jax.sharding import constrain_batch

# Widths per resolution level (PAPER.md); the paper trains UNet48.
PRESETS = {
    "unet32": (32, 32, 64, 64, 128, 128),
    "unet48": (48, 48, 96, 96, 192, 192),
    "unet64": (64, 64, 128, 128, 256, 256),
    "unet128": (128, 128, 256, 256, 512, 512),
}


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
  """Sinusoidal embedding of (float) timesteps, cos first (diffusers flip_sin_to_cos)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = t.astype(jnp.float32)[:, None] * freqs[None]
  emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


def _conv(features: int, k: int, dtype, cpu_kernels: bool, strides: int = 1) -> nn.Conv:
  """A k x k 'same' convolution: `models/conv.py`'s (the matmul form on the CPU's smallest
  levels, XLA's own elsewhere) unless `cpu_kernels` is off."""
  return nn.Conv(features, (k, k), strides=strides, padding=k // 2, dtype=dtype,
                 conv_general_dilated=conv_lib.conv if cpu_kernels else None)


def _norm(groups: int, dtype, cpu_kernels: bool) -> nn.Module:
  """GroupNorm: `models/norm.py`'s two-pass gradient on the CPU unless `cpu_kernels` is off
  (Flax's); the same parameters and results either way."""
  cls = GroupNorm if cpu_kernels else nn.GroupNorm
  return cls(num_groups=groups, epsilon=1e-5, dtype=dtype)


class ResnetBlock(nn.Module):
  """GroupNorm-SiLU-Conv twice, time embedding added between; 1x1 shortcut if widths differ."""

  features: int
  groups: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  cpu_kernels: bool = True

  @nn.compact
  def __call__(self, x, temb, train: bool):
    norm = lambda: _norm(self.groups, self.dtype, self.cpu_kernels)
    conv = lambda k: _conv(self.features, k, self.dtype, self.cpu_kernels)
    # Pins every conv output to the batch split (see constrain_batch): left free, XLA
    # follows the fsdp-split kernel and splits it by channels, then pays all-to-alls.
    conv = lambda k, conv=conv: lambda y: constrain_batch(conv(k)(y))
    h = conv(3)(nn.swish(norm()(x)))
    t = constrain_batch(nn.Dense(self.features, dtype=self.dtype)(nn.swish(temb)))
    h = h + t[:, None, None]
    h = nn.swish(norm()(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = conv(3)(h)
    if x.shape[-1] != self.features:
      x = conv(1)(x)
    return x + h


class AttentionBlock(nn.Module):
  """Multi-head self-attention over pixels with a residual; softmax in float32."""

  groups: int
  head_dim: int = 8
  dtype: jnp.dtype = jnp.float32
  cpu_kernels: bool = True

  @nn.compact
  def __call__(self, x):
    b, height, width, c = x.shape
    heads = max(c // self.head_dim, 1)
    h = _norm(self.groups, self.dtype, self.cpu_kernels)(x)
    h = h.reshape(b, height * width, c)
    q, k, v = (
        constrain_batch(nn.Dense(c, dtype=self.dtype, name=n)(h)).reshape(b, -1, heads, c // heads)
        for n in ("query", "key", "value")
    )
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(logits / math.sqrt(c // heads), axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, -1, c)
    out = constrain_batch(nn.Dense(c, dtype=self.dtype, name="out")(out))
    return x + out.reshape(b, height, width, c)


class UNet(nn.Module):
  """Epsilon-prediction UNet: (x_t, t[, labels]) -> eps, NHWC, float32 out.

  Attributes:
    channels: width of each resolution level; one 2x downsampling between levels.
    layers_per_block: ResNet blocks per down level (up levels have one more).
    attention_levels: down levels (0-based) with self-attention; mirrored on the way up.
    norm_groups: GroupNorm groups; every width must be divisible by it.
    out_channels: image channels.
    num_classes: > 0 adds a class embedding with one extra "null" class (index
      num_classes) for classifier-free guidance.
    cpu_kernels: the CPU's faster forms (`models/conv.py`, `models/norm.py`; other
      platforms lower them to XLA's own ops); False keeps XLA's convolution and Flax's
      GroupNorm everywhere. Same parameters either way.
  """

  channels: Sequence[int]
  out_channels: int
  layers_per_block: int = 2
  attention_levels: Sequence[int] = ()
  norm_groups: int = 16
  head_dim: int = 8
  num_classes: int = 0
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  cpu_kernels: bool = True

  @nn.compact
  def __call__(self, x, t, labels=None, train: bool = False):
    chans, groups, dt = tuple(self.channels), self.norm_groups, self.dtype
    ck = self.cpu_kernels
    block = lambda ch: ResnetBlock(ch, groups, self.dropout, dt, ck)
    levels = len(chans)
    temb = timestep_embedding(t, chans[0])
    temb = nn.Dense(4 * chans[0], dtype=dt)(temb)
    temb = nn.Dense(4 * chans[0], dtype=dt)(nn.swish(temb))
    if self.num_classes:
      if labels is None:
        raise ValueError("UNet.num_classes > 0 needs labels (use num_classes for 'null').")
      temb = temb + nn.Embed(self.num_classes + 1, 4 * chans[0], dtype=dt)(labels)
    temb = constrain_batch(temb)

    # Every conv and projection output, here and inside the blocks, stays split over the
    # batch (constrain_batch); block outputs are sums of such outputs.
    h = constrain_batch(_conv(chans[0], 3, dt, ck)(x.astype(dt)))
    skips = [h]
    for level, ch in enumerate(chans):
      for _ in range(self.layers_per_block):
        h = block(ch)(h, temb, train)
        if level in self.attention_levels:
          h = AttentionBlock(groups, self.head_dim, dt, ck)(h)
        skips.append(h)
      if level < levels - 1:
        h = constrain_batch(_conv(ch, 3, dt, ck, strides=2)(h))
        skips.append(h)

    h = block(chans[-1])(h, temb, train)
    h = AttentionBlock(groups, self.head_dim, dt, ck)(h)
    h = block(chans[-1])(h, temb, train)

    for level in reversed(range(levels)):
      for _ in range(self.layers_per_block + 1):
        h = jnp.concatenate([h, skips.pop()], axis=-1)
        h = block(chans[level])(h, temb, train)
        if level in self.attention_levels:
          h = AttentionBlock(groups, self.head_dim, dt, ck)(h)
      if level > 0:
        b, height, width, c = h.shape
        h = jax.image.resize(h, (b, 2 * height, 2 * width, c), method="nearest")
        h = constrain_batch(_conv(chans[level], 3, dt, ck)(h))
    assert not skips

    h = nn.swish(_norm(groups, dt, ck)(h))
    h = _conv(self.out_channels, 3, dt, ck)(h)
    return constrain_batch(h.astype(jnp.float32))


def unet_from_config(model_config, image_shape: tuple[int, int, int], num_classes: int) -> UNet:
  """Builds the UNet of `config.model` for images of `image_shape` (H, W, C)."""
  return UNet(
      channels=tuple(model_config.channels),
      out_channels=image_shape[-1],
      layers_per_block=model_config.layers_per_block,
      attention_levels=tuple(model_config.attention_levels),
      norm_groups=model_config.norm_groups,
      head_dim=model_config.head_dim,
      num_classes=num_classes if model_config.class_conditional else 0,
      dropout=model_config.dropout,
      dtype=jnp.bfloat16 if model_config.dtype == "bfloat16" else jnp.float32,
      cpu_kernels=model_config.get("cpu_kernels", True),
  )
