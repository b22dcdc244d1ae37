"""The XLA:CPU options the package compiles its feature extractors with."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import xla_flags


def test_encoder_options_are_cpu_only_and_compile_to_the_same_result(rng):
  """Other platforms get no options; on the CPU they compile (this jaxlib knows the enum)
  and a dot gives the default program's result, without YNNPACK."""
  assert xla_flags.encoder_compiler_options("tpu") is None
  assert xla_flags.encoder_compiler_options("gpu") is None
  options = xla_flags.encoder_compiler_options("cpu")
  if options is None:
    pytest.skip("no encoder options here: a jaxlib they were not measured on, or "
                "COLLAPSE_XLA_CPU_DEFAULTS=0")
  a = jnp.asarray(rng.normal(size=(257, 384)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(384, 512)), jnp.float32)
  fn = lambda a, b: jnp.tanh(a @ b)
  default = jax.jit(fn).lower(a, b).compile()
  eigen = jax.jit(fn, compiler_options=options).lower(a, b).compile()
  np.testing.assert_allclose(eigen(a, b), default(a, b), rtol=1e-5, atol=1e-4)
  assert "ynn_fusion" in default.as_text() and "ynn_fusion" not in eigen.as_text()
