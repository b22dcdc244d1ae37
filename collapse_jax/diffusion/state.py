"""The one train-state pytree and the optimizer that updates it."""

import functools

import flax.struct
import jax
import optax


@flax.struct.dataclass
class TrainState:
  """step, params, opt_state and the EMA of params (None when EMA is off)."""

  step: jax.Array
  params: dict
  opt_state: optax.OptState
  ema_params: dict | None

  @property
  def sampling_params(self) -> dict:
    """The parameters to sample with: the EMA when it is kept, else the raw ones."""
    return self.params if self.ema_params is None else self.ema_params


def lr_schedule(lr: float, warmup_steps: int, total_steps: int) -> optax.Schedule:
  """Linear warm-up from 0 to `lr`, then cosine decay to 0 at `total_steps`."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=lr,
      warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1),
      end_value=0.0,
  )


@functools.cache
def _make_optimizer(
    lr: float,
    b1: float,
    b2: float,
    eps: float,
    weight_decay: float,
    warmup_steps: int,
    total_steps: int,
    grad_clip: float,
) -> optax.GradientTransformation:
  # Cached so that repeated calls with the same settings return the same object, which
  # keeps the jitted train step (static in the optimizer) compiled once per shape.
  schedule = lr_schedule(lr, warmup_steps, total_steps)
  adamw = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
  if grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(grad_clip), adamw)
  return adamw


def make_optimizer(optim_config, total_steps: int) -> optax.GradientTransformation:
  """AdamW with linear warm-up, cosine decay to 0 and global-norm clipping (the paper's)."""
  return _make_optimizer(
      float(optim_config.lr),
      float(optim_config.b1),
      float(optim_config.b2),
      float(optim_config.eps),
      float(optim_config.weight_decay),
      int(optim_config.warmup_steps),
      int(total_steps),
      float(optim_config.grad_clip),
  )
