"""Trains one diffusion model and writes a sample grid.

  python scripts/train.py --config configs/digits.py --workdir runs/digits_one_model \
      [--config.train.num_steps=500 ...]
"""

from collapse_jax import cli
from collapse_jax.diffusion.job import train_and_evaluate

if __name__ == "__main__":
  cli.run(train_and_evaluate)
