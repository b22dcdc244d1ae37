"""Denoiser networks."""

from collapse_jax.models.unet import PRESETS, UNet, unet_from_config

__all__ = ["PRESETS", "UNet", "unet_from_config"]
