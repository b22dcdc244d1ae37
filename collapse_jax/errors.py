"""Errors that are the user's to fix: a bad config value, a missing data path, a held workdir.

The scripts print each as one line, `error: <message>`, and exit 2 (`collapse_jax.cli`); any
other exception is a bug and keeps its traceback. Each class is also the builtin it
refines, so callers that catch ValueError, FileNotFoundError or RuntimeError still do.
"""


class UserError(Exception):
  """A mistake in what the user asked for; the message names the field or path and the fix."""


class ConfigError(UserError, ValueError):
  """A config field or variant that cannot run."""


class DataPathError(UserError, FileNotFoundError):
  """A dataset or weights path that does not hold what the config says."""


class WorkdirError(UserError, RuntimeError):
  """A workdir held by another live run, or holding a run of another config."""
