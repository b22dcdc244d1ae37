"""Trains one diffusion model and writes a sample grid.

  python scripts/train.py --config configs/digits.py --workdir runs/digits \
      [--config.train.num_steps=500 ...]
"""

from absl import app, flags
from ml_collections import config_flags

from collapse_jax import distributed, logs
from collapse_jax.train import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, samples.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete a workdir run of another config.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logs.setup()
  distributed.initialize(_CONFIG.value)
  train_and_evaluate(_CONFIG.value, _WORKDIR.value, _OVERWRITE.value)


if __name__ == "__main__":
  app.run(main)
