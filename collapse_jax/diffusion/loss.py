"""The epsilon-prediction MSE loss (Ho et al., the paper's objective)."""

import jax
import jax.numpy as jnp

from collapse_jax.diffusion.schedule import Schedule, q_sample


def eps_loss(eps_fn, schedule: Schedule, x0: jax.Array, rng: jax.Array) -> jax.Array:
  """Mean over the batch of ||eps - eps_fn(x_t, t)||^2 / dim, t ~ U{0..T-1}."""
  t_rng, n_rng = jax.random.split(rng)
  t = jax.random.randint(t_rng, (x0.shape[0],), 0, schedule.num_steps)
  noise = jax.random.normal(n_rng, x0.shape, jnp.float32)
  x_t = q_sample(schedule, x0, t, noise)
  pred = eps_fn(x_t, t)
  return jnp.mean(jnp.square(pred.astype(jnp.float32) - noise))
