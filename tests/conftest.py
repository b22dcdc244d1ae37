"""Every test process sees 8 fake CPU devices; single-device runs use a 1-device mesh."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def devices():
  devs = jax.devices()
  assert len(devs) == 8, "tests expect 8 fake CPU devices (XLA_FLAGS set before jax import)"
  return devs
