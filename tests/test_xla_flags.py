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


def test_once_options_are_cpu_only_honour_the_opt_out_and_agree_to_rounding(monkeypatch, rng):
  """Init programs compile at -O0 on the CPU only, and give the default program's values to
  float rounding (the optimiser may contract or reorder float ops; integer ops are exact)."""
  assert xla_flags.once_compiler_options("tpu") is None
  assert xla_flags.once_compiler_options("gpu") is None
  options = xla_flags.once_compiler_options("cpu")
  assert options == xla_flags.ONCE_CPU_OPTIONS
  x = jnp.asarray(rng.normal(size=(64, 32)), jnp.float32)
  fn = lambda key, x: jnp.tanh(x @ x.T) * jax.random.normal(key, (64, 64))
  key = jax.random.key(int(rng.integers(1 << 30)))
  fast = jax.jit(fn, compiler_options=options)(key, x)
  np.testing.assert_allclose(fast, jax.jit(fn)(key, x), rtol=1e-5, atol=1e-6)
  monkeypatch.setenv("COLLAPSE_XLA_CPU_DEFAULTS", "0")
  assert xla_flags.once_compiler_options("cpu") is None
