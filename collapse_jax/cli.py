"""The shared command line of the scripts: --config (ml_collections), --workdir, --overwrite."""

from absl import app, flags
from ml_collections import config_flags

from collapse_jax import distributed, logs


def run(job) -> None:
  """Parses the flags, sets up logging and processes, then calls job(config, workdir, overwrite)."""
  config = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "Directory of the run (resumed if present).")
  overwrite = flags.DEFINE_bool("overwrite", False, "Delete a workdir run of another config.")
  flags.mark_flags_as_required(["config", "workdir"])

  def main(argv):
    del argv
    logs.setup()
    distributed.initialize(config.value)
    job(config.value, workdir.value, overwrite.value)

  app.run(main)
