"""Runs the self-consuming loop: train, generate, select, retrain, for G generations.

  python scripts/recursive.py --config configs/digits.py --workdir runs/digits_vanilla
  python scripts/recursive.py --config configs/digits.py:greedy --workdir runs/digits_greedy \
      [--config.loop.generations=6 ...]

Killed runs resume when the same command is run again.
"""

from absl import app, flags
from ml_collections import config_flags

from collapse_jax import distributed, logs
from collapse_jax.loop import run_recursive

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the run (resumed if present).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete a workdir run of another config.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logs.setup()
  distributed.initialize(_CONFIG.value)
  run_recursive(_CONFIG.value, _WORKDIR.value, _OVERWRITE.value)


if __name__ == "__main__":
  app.run(main)
