"""A residual MLP epsilon predictor for vector data: the diffusion model without images."""

import jax.numpy as jnp
from flax import linen as nn

from collapse_jax.models.unet import timestep_embedding
from collapse_jax.sharding import constrain_batch


class MLPDenoiser(nn.Module):
  """eps(x_t, t[, label]) for x_t of shape (B, d): the input and a sinusoidal time embedding
  (plus a class embedding, with a "null" class for guidance) feed `depth` pre-norm residual
  blocks of width `hidden`; the output layer starts at zero, so training starts from eps = 0.
  """

  dim: int
  hidden: int = 256
  depth: int = 3
  num_classes: int = 0
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, t, labels=None, train: bool = False):
    cond = nn.Dense(self.hidden)(nn.silu(nn.Dense(self.hidden)(
        timestep_embedding(t, self.hidden))))
    if self.num_classes:
      if labels is None:
        labels = jnp.full((x.shape[0],), self.num_classes, jnp.int32)
      cond = cond + nn.Embed(self.num_classes + 1, self.hidden)(labels)
    h = nn.Dense(self.hidden)(x.astype(jnp.float32)) + cond
    for _ in range(self.depth):
      r = nn.Dense(self.hidden)(nn.silu(nn.LayerNorm()(h)))
      r = nn.silu(r + nn.Dense(self.hidden)(cond))
      r = nn.Dropout(self.dropout, deterministic=not train)(r)
      h = h + nn.Dense(self.hidden)(r)
    out = nn.Dense(self.dim, kernel_init=nn.initializers.zeros)(nn.silu(nn.LayerNorm()(h)))
    return constrain_batch(out.astype(jnp.float32))


def mlp_from_config(model_config, dim: int, num_classes: int) -> MLPDenoiser:
  return MLPDenoiser(dim=dim, hidden=model_config.hidden, depth=model_config.depth,
                     num_classes=num_classes if model_config.class_conditional else 0,
                     dropout=model_config.dropout)
