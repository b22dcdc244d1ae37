"""Terminal logging for the command-line tools: our progress at INFO, libraries at WARNING."""

import logging
import sys

from absl import logging as absl_logging


def setup(level: int = logging.INFO) -> None:
  """Shows collapse_jax's progress lines; keeps orbax/absl chatter at WARNING."""
  absl_logging.set_verbosity(absl_logging.WARNING)
  logger = logging.getLogger("collapse_jax")
  logger.setLevel(level)
  if not logger.handlers:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
  logger.propagate = False
