import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.diffusion.schedule import linear_schedule, q_sample


def test_linear_schedule_invariants():
  s = linear_schedule(1000)
  abar = np.asarray(s.alphas_cumprod)
  betas = np.asarray(s.betas)
  assert abar.shape == (1000,)
  np.testing.assert_allclose(betas[[0, -1]], [1e-4, 0.02], rtol=1e-6)
  assert np.all(np.diff(abar) < 0), "alphas_cumprod must decrease strictly"
  assert 0 < abar[-1] < 1e-4 and abar[0] == np.float32(1 - 1e-4)
  np.testing.assert_allclose(abar, np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-5)


def test_q_sample_moments():
  s = linear_schedule(1000)
  rng = np.random.default_rng(0)
  x0 = jnp.asarray(rng.uniform(-1, 1, size=(4,)), jnp.float32)
  n = 200_000
  for t in (0, 250, 999):
    noise = jax.random.normal(jax.random.key(t), (n, 4))
    xt = q_sample(s, jnp.broadcast_to(x0, (n, 4)), jnp.full((n,), t), noise)
    abar = float(s.alphas_cumprod[t])
    np.testing.assert_allclose(np.mean(xt, 0), np.sqrt(abar) * x0, atol=5 / np.sqrt(n))
    np.testing.assert_allclose(np.var(xt, 0), 1 - abar, rtol=0.02, atol=1e-6)
