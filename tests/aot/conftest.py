"""The ahead-of-time tests need XLA's TPU and GPU compilers (libtpu, the CUDA plugin, nvcc):
`make aot-setup` installs them in .venv-aot, and `make test` runs these tests there."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402

# Programs compiled for a topology without its chips cannot be read back from JAX's
# persistent cache (no client to load them into), so tests/conftest.py's cache stays off.
jax.config.update("jax_enable_compilation_cache", False)
