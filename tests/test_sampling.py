"""The samplers against closed-form optimal denoisers: no training involved."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax.diffusion import sampling
from collapse_jax.diffusion.schedule import linear_schedule

SCHEDULE = linear_schedule(1000)


def gaussian_eps_fn(mu, cov):
  """E[eps | x_t] for x_0 ~ N(mu, cov): sqrt(1-abar) Cov_t^{-1} (x_t - sqrt(abar) mu)."""
  d = mu.shape[0]

  def eps_fn(x, t):
    abar = SCHEDULE.alphas_cumprod[t[0]]
    cov_t = abar * cov + (1 - abar) * jnp.eye(d)
    resid = x - jnp.sqrt(abar) * mu
    return jnp.sqrt(1 - abar) * jnp.linalg.solve(cov_t, resid.T).T

  return eps_fn


def finite_set_eps_fn(points):
  """The optimal predictor when the data is exactly `points` (uniform mixture of deltas)."""

  def eps_fn(x, t):
    abar = SCHEDULE.alphas_cumprod[t[0]]
    d2 = jnp.sum((x[:, None] - jnp.sqrt(abar) * points[None]) ** 2, -1)
    w = jax.nn.softmax(-d2 / (2 * (1 - abar)), axis=-1)
    x0 = w @ points
    return (x - jnp.sqrt(abar) * x0) / jnp.sqrt(1 - abar)

  return eps_fn


def random_gaussian(d, seed):
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(d, d)) * 0.4
  cov = a @ a.T + 0.05 * np.eye(d)
  return jnp.asarray(rng.uniform(-0.5, 0.5, d), jnp.float32), jnp.asarray(cov, jnp.float32)


SAMPLERS = {
    "ddpm": lambda f, noise, key: sampling.ddpm_sample(f, SCHEDULE, noise, key, clip_x0=False),
    "ddim_eta0": lambda f, noise, key: sampling.ddim_sample(
        f, SCHEDULE, noise, key, num_steps=100, eta=0.0, clip_x0=False),
    "ddim_eta1": lambda f, noise, key: sampling.ddim_sample(
        f, SCHEDULE, noise, key, num_steps=250, eta=1.0, clip_x0=False),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samplers_reproduce_a_gaussian(name):
  d, n = 3, 20_000
  mu, cov = random_gaussian(d, seed=sum(map(ord, name)))
  noise = jax.random.normal(jax.random.key(1), (n, d))
  fn = jax.jit(lambda noise, key: SAMPLERS[name](gaussian_eps_fn(mu, cov), noise, key))
  x = np.asarray(fn(noise, jax.random.key(2)), np.float64)
  se = np.sqrt(np.diag(cov) / n)
  np.testing.assert_array_less(np.abs(x.mean(0) - mu), 5 * se + 2e-3)
  emp = np.cov(x.T)
  # Sampling error of a covariance entry ~ sqrt((s_ii s_jj + s_ij^2) / n); 6 sigma + bias.
  sd = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + np.asarray(cov) ** 2) / n)
  np.testing.assert_array_less(np.abs(emp - cov), 6 * sd + 0.01 * np.abs(cov).max())


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_optimal_denoiser_of_a_finite_set_memorizes(name):
  rng = np.random.default_rng(3)
  points = jnp.asarray(rng.uniform(-1, 1, size=(6, 8)), jnp.float32)
  noise = jax.random.normal(jax.random.key(4), (512, 8))
  fn = jax.jit(lambda noise, key: SAMPLERS[name](finite_set_eps_fn(points), noise, key))
  x = np.asarray(fn(noise, jax.random.key(5)))
  dist = np.linalg.norm(x[:, None] - np.asarray(points)[None], axis=-1)
  nearest = dist.min(1)
  spacing = np.linalg.norm(points[:, None] - points[None], axis=-1)[np.triu_indices(6, 1)].min()
  assert np.all(nearest < 0.02 * spacing), f"max distance to a training point {nearest.max()}"
  # Every training point is reached (no mode dropped by the sampler).
  assert len(np.unique(dist.argmin(1))) == 6


def test_ddim_timesteps_and_bad_steps():
  ts = np.asarray(sampling.ddim_timesteps(1000, 50))
  assert ts[0] == 980 and ts[-1] == 0 and len(ts) == 50
  with pytest.raises(ValueError, match="num_steps"):
    sampling.ddim_timesteps(1000, 0)


def test_guidance_combines_conditional_and_unconditional():
  def apply_fn(params, x, t, labels):
    return x * 0 + jnp.where(labels == 10, 1.0, 3.0)[:, None]

  x = jnp.zeros((4, 2))
  t = jnp.zeros((4,), jnp.int32)
  labels = jnp.arange(4)
  eps = sampling.guided_eps_fn(apply_fn, None, labels, 2.5, null_label=10)(x, t)
  np.testing.assert_allclose(eps, 1.0 + 2.5 * (3.0 - 1.0))
