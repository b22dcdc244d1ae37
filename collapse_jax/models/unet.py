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


class ResnetBlock(nn.Module):
  """GroupNorm-SiLU-Conv twice, time embedding added between; 1x1 shortcut if widths differ."""

  features: int
  groups: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, temb, train: bool):
    norm = lambda: nn.GroupNorm(num_groups=self.groups, epsilon=1e-5, dtype=self.dtype)
    conv = lambda k: nn.Conv(self.features, (k, k), padding=k // 2, dtype=self.dtype)
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

  @nn.compact
  def __call__(self, x):
    b, height, width, c = x.shape
    heads = max(c // self.head_dim, 1)
    h = nn.GroupNorm(num_groups=self.groups, epsilon=1e-5, dtype=self.dtype)(x)
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

  @nn.compact
  def __call__(self, x, t, labels=None, train: bool = False):
    chans, groups, dt = tuple(self.channels), self.norm_groups, self.dtype
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
    h = constrain_batch(nn.Conv(chans[0], (3, 3), padding=1, dtype=dt)(x.astype(dt)))
    skips = [h]
    for level, ch in enumerate(chans):
      for _ in range(self.layers_per_block):
        h = ResnetBlock(ch, groups, self.dropout, dt)(h, temb, train)
        if level in self.attention_levels:
          h = AttentionBlock(groups, self.head_dim, dt)(h)
        skips.append(h)
      if level < levels - 1:
        h = constrain_batch(nn.Conv(ch, (3, 3), strides=2, padding=1, dtype=dt)(h))
        skips.append(h)

    h = ResnetBlock(chans[-1], groups, self.dropout, dt)(h, temb, train)
    h = AttentionBlock(groups, self.head_dim, dt)(h)
    h = ResnetBlock(chans[-1], groups, self.dropout, dt)(h, temb, train)

    for level in reversed(range(levels)):
      for _ in range(self.layers_per_block + 1):
        h = jnp.concatenate([h, skips.pop()], axis=-1)
        h = ResnetBlock(chans[level], groups, self.dropout, dt)(h, temb, train)
        if level in self.attention_levels:
          h = AttentionBlock(groups, self.head_dim, dt)(h)
      if level > 0:
        b, height, width, c = h.shape
        h = jax.image.resize(h, (b, 2 * height, 2 * width, c), method="nearest")
        h = constrain_batch(nn.Conv(chans[level], (3, 3), padding=1, dtype=dt)(h))
    assert not skips

    h = nn.swish(nn.GroupNorm(num_groups=groups, epsilon=1e-5, dtype=dt)(h))
    h = nn.Conv(self.out_channels, (3, 3), padding=1, dtype=dt)(h)
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
  )
