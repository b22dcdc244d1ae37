"""Runs the self-consuming loop: train, generate, select, retrain, for G generations.

  python scripts/recursive.py --config configs/digits.py --workdir runs/digits_vanilla
  python scripts/recursive.py --config configs/digits.py:greedy --workdir runs/digits_greedy \
      [--config.loop.generations=6 ...]

Killed runs resume when the same command is run again.
"""

from collapse_jax import cli
from collapse_jax.loop.recursive import run_recursive

if __name__ == "__main__":
  cli.run(run_recursive)
