"""collapse_jax: model collapse in diffusion models, in JAX."""

__version__ = "0.1.0"
