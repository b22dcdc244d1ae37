"""The DDPM noise schedule as arrays indexed by integer timestep t in [0, T)."""

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Schedule:
  """betas, alphas_cumprod and their square roots, each of shape (T,), float32."""

  betas: jax.Array
  alphas_cumprod: jax.Array

  @property
  def num_steps(self) -> int:
    return self.betas.shape[0]

  @property
  def sqrt_alphas_cumprod(self) -> jax.Array:
    return jnp.sqrt(self.alphas_cumprod)

  @property
  def sqrt_one_minus_alphas_cumprod(self) -> jax.Array:
    return jnp.sqrt(1.0 - self.alphas_cumprod)


def linear_schedule(
    num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Schedule:
  """Ho et al.'s linear betas (the paper's and diffusers' DDPM default)."""
  betas = jnp.linspace(beta_start, beta_end, num_steps, dtype=jnp.float32)
  return Schedule(betas=betas, alphas_cumprod=jnp.cumprod(1.0 - betas))


def schedule_from_config(config) -> Schedule:
  """config.diffusion's schedule (linear betas)."""
  d = config.diffusion
  return linear_schedule(d.num_steps, d.beta_start, d.beta_end)


def _bcast(values: jax.Array, t: jax.Array, ndim: int) -> jax.Array:
  return values[t].reshape(t.shape + (1,) * (ndim - t.ndim))


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
  """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, with per-example t."""
  return (
      _bcast(schedule.sqrt_alphas_cumprod, t, x0.ndim) * x0
      + _bcast(schedule.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise
  )
