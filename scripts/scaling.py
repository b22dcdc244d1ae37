"""The scaling table: the paper's settings planned ahead of time on TPU slices and GPU nodes.

  .venv-aot/bin/python scripts/scaling.py --workdir runs/scaling

Each (setting, target) plan is kept in the workdir as it finishes, so a rerun resumes; the
table between the `scaling table` markers of docs/scaling.md and the README is written
from those plans, not typed.
"""

import logging
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from collapse_jax import logs  # noqa: E402
from collapse_jax.plan import table  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/scaling", "Plans and their compile cache.")
_OUT = flags.DEFINE_string("out", "docs/scaling.md", "A file whose table this replaces.")
_README = flags.DEFINE_string("readme", "README.md", "Also replaced there ('' = not).")
_TARGETS = flags.DEFINE_list("targets", list(table.TARGETS), "Targets to plan on.")
_SETTINGS = flags.DEFINE_list("settings", [s[0] for s in table.SETTINGS],
                              "Settings (by name) to plan.")
_PLAN = flags.DEFINE_bool("plan", True, "Plan what is missing (--noplan: only the table "
                          "of the plans already kept).")


def main(argv):
  del argv
  logs.setup()
  settings = [s for s in table.SETTINGS if s[0] in _SETTINGS.value]
  rows = table.run(_WORKDIR.value, settings, _TARGETS.value, _PLAN.value)
  text = table.markdown(rows)
  for path in filter(None, (_OUT.value, _README.value)):
    table.replace_between_markers(path, text)
    logging.info("wrote the table into %s", path)
  print(text)


if __name__ == "__main__":
  app.run(main)
