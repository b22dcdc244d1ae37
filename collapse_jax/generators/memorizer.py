"""The memorizer: the exact optimal denoiser of the training set, sampled by the project's
own DDPM/DDIM samplers. It is the diffusion model the paper's collapse tends to: trained to
zero loss on its training set, its samples are copies of training rows (the memorization
limit), each row drawn with probability 1/n in the continuous-time limit.

For the empirical distribution (1/n) sum_i delta(x_i), the noisy x_t = sqrt(abar) x0 +
sqrt(1 - abar) eps has posterior weights w_i ~ exp(-|x_t - sqrt(abar) x_i|^2 / (2 (1 - abar)))
over the rows, so E[x0 | x_t] = sum_i w_i x_i and the optimal epsilon is
(x_t - sqrt(abar) E[x0 | x_t]) / sqrt(1 - abar). A class label restricts the rows to its
class (the "null" label keeps all: classifier-free guidance works unchanged).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.data.sets import ImageSet
from collapse_jax.diffusion.schedule import linear_schedule, schedule_from_config
from collapse_jax.generators.base import Fitted, flat, to_model
from collapse_jax.generators.diffusion import sample_denoiser
from collapse_jax.sharding import put_replicated, replicated


@dataclasses.dataclass(frozen=True)
class OptimalDenoiser:
  """eps(x_t, t[, label]) of the training rows in params["data"] (n, D), with the `.apply`
  and `.num_classes` of a Flax denoiser, so `generate` samples it like the UNet."""

  num_steps: int
  beta_start: float
  beta_end: float
  num_classes: int = 0

  def apply(self, variables, x, t, labels=None, train: bool = False):
    del train
    rows = variables["params"]["data"]
    abar = linear_schedule(self.num_steps, self.beta_start, self.beta_end).alphas_cumprod[t]
    a, s2 = jnp.sqrt(abar)[:, None], (1.0 - abar)[:, None]
    xf = x.reshape(x.shape[0], -1).astype(jnp.float32)
    dot = jnp.matmul(xf, rows.T, precision=jax.lax.Precision.HIGHEST)
    # -|x_t - a x_i|^2 / (2 s2) up to a per-sample constant, which the softmax drops
    logits = (a * dot - 0.5 * abar[:, None] * jnp.sum(rows * rows, axis=1)[None]) / s2
    if self.num_classes and labels is not None:
      own = (variables["params"]["labels"][None] == labels[:, None]) | (
          labels[:, None] == self.num_classes)
      logits = jnp.where(own, logits, -jnp.inf)
    x0 = jnp.matmul(jax.nn.softmax(logits, axis=1), rows, precision=jax.lax.Precision.HIGHEST)
    eps = (xf - a * x0) / jnp.sqrt(s2)
    return eps.reshape(x.shape)


class Memorizer:
  """No training: `fit` keeps the training rows (on every device); `sample` runs the
  configured sampler (config.sample) on their optimal denoiser."""

  def __init__(self, config, data_shape: tuple, num_classes: int, mesh):
    d = config.diffusion
    classes = num_classes if config.model.class_conditional else 0
    self.denoiser = OptimalDenoiser(d.num_steps, d.beta_start, d.beta_end, classes)
    self.conditional = bool(classes)
    self.config, self.mesh, self.shape = config, mesh, tuple(data_shape)
    self.schedule = schedule_from_config(config)

  def fit(self, data: ImageSet, key, *, generation: int, workdir: str,
          log_prefix: str = "") -> Fitted:
    del key, generation, workdir, log_prefix
    rows = jax.device_put(flat(to_model(data.images)), replicated(self.mesh))
    params = {"data": rows}
    if self.conditional:
      params["labels"] = put_replicated(np.asarray(data.labels, np.int32), self.mesh)
    return Fitted(params)

  def sample(self, fitted: Fitted, key, n: int, labels: np.ndarray | None = None):
    return sample_denoiser(self.denoiser, fitted.state, key, n, labels, mesh=self.mesh,
                           schedule=self.schedule, data_shape=self.shape,
                           sample_config=self.config.sample)
