"""Generators of the self-consuming loop, by `config.model.kind`.

A new generative model is a new module here with a class of the `base.Generator` interface
(built as Kind(config, data_shape, num_classes, mesh)), one entry in KINDS and its name in
`config_lib.MODEL_KINDS`.
"""

from collapse_jax.errors import ConfigError
from collapse_jax.generators.base import Fitted, Generator
from collapse_jax.generators.diffusion import Diffusion
from collapse_jax.generators.gaussian import Gaussian
from collapse_jax.generators.kde import KDE
from collapse_jax.generators.memorizer import Memorizer

KINDS = {
    "unet": Diffusion,  # DDPM with the UNet (images; the paper's model)
    "mlp": Diffusion,  # DDPM with the MLP denoiser (vector data)
    "gaussian": Gaussian,  # maximum-likelihood Gaussian, sampled exactly
    "memorizer": Memorizer,  # the training set's exact optimal denoiser
    "kde": KDE,  # a training row plus Gaussian noise
}


def make_generator(config, data_shape: tuple, num_classes: int, mesh) -> Generator:
  kind = config.model.kind
  if kind not in KINDS:
    raise ConfigError(f"config.model.kind={kind!r} is unknown; choose one of {sorted(KINDS)}.")
  return KINDS[kind](config, tuple(data_shape), num_classes, mesh)


__all__ = ["KINDS", "Fitted", "Generator", "make_generator"]
