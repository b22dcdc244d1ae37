"""Runs the self-consuming loop: train, generate, select, retrain, for G generations.

  python scripts/recursive.py --config configs/digits.py --workdir runs/digits_vanilla
  python scripts/recursive.py --config configs/digits.py:greedy --workdir runs/digits_greedy \
      [--config.loop.generations=6 ...]

Killed runs resume when the same command is run again. A run that would take over an
hour on the platform found stops at start (collapse_jax/plan/budget.py) unless
--config.allow_slow_platform=True.
"""

import functools

from collapse_jax import cli
from collapse_jax.loop.recursive import run_recursive
from collapse_jax.plan import budget

if __name__ == "__main__":
  cli.run(run_recursive, preflight=functools.partial(budget.check, job="recursive"))
