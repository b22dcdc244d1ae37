"""Trains one diffusion model and writes a sample grid.

  python scripts/train.py --config configs/digits.py --workdir runs/digits_one_model \
      [--config.train.num_steps=500 ...]
"""

import functools

from collapse_jax import cli
from collapse_jax.diffusion.job import train_and_evaluate
from collapse_jax.plan import budget

if __name__ == "__main__":
  cli.run(train_and_evaluate, preflight=functools.partial(budget.check, job="train"))
