"""Ancestral DDPM and DDIM samplers as `lax.fori_loop`s over an epsilon predictor.

`eps_fn(x_t, t) -> eps` is any function: the UNet, a guided UNet, or (in tests) the
closed-form optimal predictor of a known distribution.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from collapse_jax.diffusion.schedule import Schedule

EpsFn = Callable[[jax.Array, jax.Array], jax.Array]


def _predict_x0(schedule: Schedule, x, eps, t, clip: bool):
  abar = schedule.alphas_cumprod[t]
  x0 = (x - jnp.sqrt(1.0 - abar) * eps) / jnp.sqrt(abar)
  return jnp.clip(x0, -1.0, 1.0) if clip else x0


def ddpm_step(eps_fn: EpsFn, schedule: Schedule, x: jax.Array, t, rng: jax.Array,
              clip_x0: bool = True) -> jax.Array:
  """One ancestral step x_t -> x_{t-1}: the body of `ddpm_sample` (and what a plan
  compiles as one denoising step)."""
  abar = schedule.alphas_cumprod
  abar_prev = jnp.concatenate([jnp.ones((1,), abar.dtype), abar[:-1]])
  tb = jnp.full((x.shape[0],), t, jnp.int32)
  eps = eps_fn(x, tb).astype(jnp.float32)
  x0 = _predict_x0(schedule, x, eps, t, clip_x0)
  beta = schedule.betas[t]
  coef_x0 = jnp.sqrt(abar_prev[t]) * beta / (1.0 - abar[t])
  coef_xt = jnp.sqrt(1.0 - beta) * (1.0 - abar_prev[t]) / (1.0 - abar[t])
  var = beta * (1.0 - abar_prev[t]) / (1.0 - abar[t])
  z = jax.random.normal(jax.random.fold_in(rng, t), x.shape, jnp.float32)
  return coef_x0 * x0 + coef_xt * x + jnp.sqrt(jnp.maximum(var, 1e-20)) * z * (t > 0)


def ddpm_sample(
    eps_fn: EpsFn, schedule: Schedule, noise: jax.Array, rng: jax.Array, clip_x0: bool = True
) -> jax.Array:
  """Ancestral sampling over all T steps with the posterior ("fixed small") variance.

  Follows diffusers' DDPMScheduler: predict x0 (optionally clipped to [-1, 1]) and step
  to the mean of q(x_{t-1} | x_t, x0), adding noise for t > 0.
  """
  num_steps = schedule.num_steps

  def body(i, x):
    return ddpm_step(eps_fn, schedule, x, num_steps - 1 - i, rng, clip_x0)

  return jax.lax.fori_loop(0, num_steps, body, noise.astype(jnp.float32))


def ddim_timesteps(num_train_steps: int, num_steps: int) -> jax.Array:
  """Evenly spaced ("leading") timesteps, descending, as in diffusers' DDIMScheduler."""
  if not 1 <= num_steps <= num_train_steps:
    raise ValueError(f"DDIM num_steps={num_steps} must be in [1, {num_train_steps}].")
  stride = num_train_steps // num_steps
  return (jnp.arange(num_steps, dtype=jnp.int32) * stride)[::-1]


def ddim_step(eps_fn: EpsFn, schedule: Schedule, x: jax.Array, i, rng: jax.Array,
              num_steps: int = 50, eta: float = 0.0, clip_x0: bool = True) -> jax.Array:
  """Step i of `num_steps` DDIM steps: the body of `ddim_sample`."""
  ts = ddim_timesteps(schedule.num_steps, num_steps)
  ts_prev = jnp.concatenate([ts[1:], jnp.array([-1], jnp.int32)])
  abar = schedule.alphas_cumprod
  t, t_prev = ts[i], ts_prev[i]
  tb = jnp.full((x.shape[0],), t, jnp.int32)
  eps = eps_fn(x, tb).astype(jnp.float32)
  x0 = _predict_x0(schedule, x, eps, t, clip_x0)
  if clip_x0:  # keep eps consistent with the clipped x0
    eps = (x - jnp.sqrt(abar[t]) * x0) / jnp.sqrt(1.0 - abar[t])
  a_t = abar[t]
  a_prev = jnp.where(t_prev >= 0, abar[jnp.maximum(t_prev, 0)], 1.0)
  sigma = eta * jnp.sqrt((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev))
  z = jax.random.normal(jax.random.fold_in(rng, i), x.shape, jnp.float32)
  direction = jnp.sqrt(jnp.maximum(1.0 - a_prev - sigma**2, 0.0)) * eps
  return jnp.sqrt(a_prev) * x0 + direction + sigma * z


def ddim_sample(
    eps_fn: EpsFn,
    schedule: Schedule,
    noise: jax.Array,
    rng: jax.Array,
    num_steps: int = 50,
    eta: float = 0.0,
    clip_x0: bool = True,
) -> jax.Array:
  """DDIM (Song et al.) with `num_steps` steps; eta=0 is deterministic, eta=1 DDPM-like."""
  ddim_timesteps(schedule.num_steps, num_steps)  # checks num_steps before tracing the loop

  def body(i, x):
    return ddim_step(eps_fn, schedule, x, i, rng, num_steps, eta, clip_x0)

  return jax.lax.fori_loop(0, num_steps, body, noise.astype(jnp.float32))


def guided_eps_fn(apply_fn, params, labels, guidance_scale: float, null_label: int) -> EpsFn:
  """Classifier-free guidance: eps_u + s (eps_c - eps_u); s = 1 is plain conditional."""
  if labels is None:
    return lambda x, t: apply_fn(params, x, t)

  def eps_fn(x, t):
    if guidance_scale == 1.0:
      return apply_fn(params, x, t, labels)
    both = jnp.concatenate([labels, jnp.full_like(labels, null_label)])
    eps = apply_fn(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]), both)
    cond, uncond = jnp.split(eps, 2)
    return uncond + guidance_scale * (cond - uncond)

  return eps_fn
