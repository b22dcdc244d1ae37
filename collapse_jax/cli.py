"""The shared command line of the scripts: --config (ml_collections), --workdir, --overwrite.

A user's mistake (a bad flag or config field, a missing path, a held workdir: the
`collapse_jax.errors` classes and flag-parsing errors) prints one line, `error: ...`, and
exits 2; Ctrl-C prints one line and exits 130; a full disk prints the path and its free
space. A preemption (SIGTERM, or config.distributed.preemption_signal) checkpoints, prints
one line and exits 75 (requeue). COLLAPSE_DEBUG=1 shows the traceback of any of them.
Anything else is a bug and keeps its traceback.
"""

import errno
import os
import re
import shutil
import sys

from absl import app, flags
from ml_collections import config_flags

from collapse_jax import distributed, logs, preemption
from collapse_jax.errors import UserError

HELP = ("Print the config's fields and their defaults with --config=FILE --help, or read "
        "collapse_jax/config_lib.py:base_config; override any with --config.<section>.<field>"
        "=value.")


def _fail(message: str, code: int, hard: bool = False) -> None:
  """Prints the one line and exits; `hard` skips interpreter teardown, which can crash
  while XLA's threads are still inside an interrupted computation."""
  if os.environ.get("COLLAPSE_DEBUG") == "1":
    raise  # noqa: PLE0704 (re-raises the exception being handled)
  print(f"error: {message}", file=sys.stderr, flush=True)
  if hard:
    sys.stdout.flush()
    os._exit(code)
  sys.exit(code)


def _flag_message(e: Exception, argv) -> str:
  """One line from a flag-parsing error: ml_collections embeds a config file's traceback in
  its message (keep the exception's own line) and escapes an unknown field's message."""
  inner = e
  while isinstance(inner, BaseException) and inner.args:  # AttributeError(KeyError(text))
    inner = inner.args[0]
  lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
  raised = [line for line in lines if re.match(r"^[\w.]*(Error|Exception): ", line)]
  if raised:  # the config file's own exception, e.g. an unknown variant
    return raised[-1].split(": ", 1)[1]
  if isinstance(e, KeyError | AttributeError):  # an unknown --config.<field>
    field = lines[0].strip("'\"") if lines else "?"
    given = [a for a in argv if a.startswith("--config.") and field in a.split("=")[0]]
    hint = " ".join(lines[1:])
    return (f"{given[0].split('=')[0] if given else field}: no such config field. {hint} "
            f"({HELP})")
  return " ".join(lines)


def _flatten(d: dict, prefix: str = "config.") -> list[tuple[str, object]]:
  out = []
  for k, v in d.items():
    out += _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]
  return out


def _help(argv) -> None:
  """--help / -h: the script's docstring, its flags, and (with --config=FILE) every field of
  that config with its value, then exit 0."""
  print((sys.modules["__main__"].__doc__ or "").strip() + "\n\nflags:")
  by_module = flags.FLAGS.flags_by_module_dict()
  own = [f for m, fs in by_module.items() if m in (argv[0], __name__) or m.endswith(
      os.path.basename(argv[0])) for f in fs]
  for f in sorted({f.name: f for f in own}.values(), key=lambda f: f.name):
    print(f"  --{f.name}: {f.help} (default: {f.default!r})")
  given = [a for a in argv[1:] if a.startswith("--config=")]
  if not given:
    print("\nAdd --config=FILE[:variant] to --help to list that config's fields.")
    sys.exit(0)
  flags.FLAGS([argv[0], given[0], "--workdir=-"])  # required flags satisfied; nothing runs
  print(f"\nconfig fields of {given[0].split('=', 1)[1]} (override any with "
        "--config.<field>=value):")
  for name, value in _flatten(flags.FLAGS["config"].value.to_dict()):
    print(f"  --{name}={value!r}")
  sys.exit(0)


def _parse_flags(argv):
  if any(a in ("-h", "--help") for a in argv[1:]):
    try:
      _help(argv)
    except (flags.Error, KeyError, AttributeError) as e:
      _fail(_flag_message(e, argv), 2)
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError) as e:
    _fail(_flag_message(e, argv), 2)


def run(job, preflight=None) -> None:
  """Parses the flags, sets up logging and processes, then calls
  job(config, workdir, overwrite), passing `preflight` on (a check the job runs once the
  config and data are validated, before it touches the workdir) when given."""
  config = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "Directory of the run (resumed if present).")
  overwrite = flags.DEFINE_bool("overwrite", False, "Delete a workdir run of another config.")
  flags.mark_flags_as_required(["config", "workdir"])

  def main(argv):
    del argv
    logs.setup()
    try:
      distributed.initialize(config.value)
      preemption.install(config.value.distributed.get("preemption_signal", ""))
      extra = {} if preflight is None else {"preflight": preflight}
      job(config.value, workdir.value, overwrite.value, **extra)
    except UserError as e:
      _fail(str(e), 2)
    except preemption.Preempted as e:
      where = f" {e.args[0]}" if e.args else ""
      print(f"preempted{where}: checkpointed; rerun the same command to resume "
            f"{workdir.value} there.", file=sys.stderr, flush=True)
      sys.exit(preemption.REQUEUE_EXIT)
    except KeyboardInterrupt as e:
      where = f" {e.args[0]}" if e.args else ""  # the loop says where it was
      _fail(f"interrupted{where}; rerun the same command to resume {workdir.value} where it "
            "stopped.", 130, hard=True)
    except OSError as e:
      if e.errno != errno.ENOSPC:
        raise
      where = e.filename or workdir.value
      existing = os.path.abspath(where)
      while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)  # the nearest folder there is, on that disk
      free = shutil.disk_usage(existing).free
      _fail(f"no space left on the device writing {where} ({free / 2**20:.0f} MiB free); "
            "free some space (a run needs its checkpoints and samples) and rerun the same "
            "command to resume.", 2)

  app.run(main, flags_parser=_parse_flags)
