"""collapse_jax: model collapse in diffusion models, in JAX."""

from collapse_jax import xla_flags as _xla_flags

_xla_flags.apply_cpu_defaults()  # before any backend starts (collapse_jax/xla_flags.py)

__version__ = "0.1.0"
