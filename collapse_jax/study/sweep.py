"""Sweeps: a grid of config values x seeds expanded into ordinary recursive runs.

Each run is a `scripts/recursive.py` workdir named by its grid values and seed, so a
sweep resumes by re-running it (finished runs are skipped, killed ones resume), a cluster
scheduler can launch the `--list` command lines in any order, and the aggregate reads
whatever has finished. `sweep.json` in the sweep directory records the spec.
"""

import ast
import dataclasses
import importlib.util
import itertools
import json
import os
import sys

from collapse_jax.metrics.writer import read_jsonl

SPEC = "sweep.json"


@dataclasses.dataclass(frozen=True)
class Run:
  cell: tuple[tuple[str, str], ...]  # (config field, value) per grid axis
  seed: int

  @property
  def name(self) -> str:
    return os.path.join("__".join(f"{k}={v}" for k, v in self.cell) or "base",
                        f"seed={self.seed}")


def parse_grid(grid: list[str]) -> list[tuple[str, list[str]]]:
  """['loop.n_train=64,128', ...] -> [('loop.n_train', ['64', '128']), ...]."""
  axes = []
  for g in grid:
    field, sep, values = g.partition("=")
    if not sep or not field or not values:
      raise ValueError(f"--grid {g!r}: write it as field=v1,v2 (e.g. loop.n_train=64,128).")
    axes.append((field.strip(), [v.strip() for v in values.split(",")]))
  return axes


def expand(axes: list[tuple[str, list[str]]], seeds: list[int]) -> list[Run]:
  """Every combination of the grid values, each with every seed."""
  fields = [f for f, _ in axes]
  cells = itertools.product(*[values for _, values in axes])
  return [Run(tuple(zip(fields, cell, strict=True)), s) for cell in cells for s in seeds]


def command(run: Run, config: str, sweep_dir: str, extra: list[str],
            script: str) -> list[str]:
  """The scripts/recursive.py command line of one run."""
  return [sys.executable, script, "--config", config, "--workdir",
          os.path.join(sweep_dir, run.name), *extra,
          *[f"--config.{k}={v}" for k, v in run.cell], f"--config.seed={run.seed}"]


def load_module(path: str):
  """A Python file (a config, configs/claims.py) loaded as a module, by path."""
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(config: str):
  """`path/to/config.py[:variants]` -> its get_config(variants), as config_flags loads it."""
  path, _, arg = config.partition(":")
  return load_module(path).get_config(arg or None)


def apply_overrides(config, overrides: list[str]) -> None:
  """Sets `--config.a.b=value` flags on a loaded config in-process (a run's command line
  without a process), each value parsed as the field's current type."""
  for flag in overrides:
    key, sep, text = flag.removeprefix("--config.").partition("=")
    if not flag.startswith("--config.") or not sep:
      raise ValueError(f"{flag!r}: write overrides as --config.field=value.")
    *parents, name = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    old = node[name]
    if isinstance(old, bool):
      value = text.lower() in ("1", "true", "yes")
    elif isinstance(old, int | float | tuple | list):
      value = type(old)(ast.literal_eval(text))
    else:
      value = text
    node[name] = value


def finished(workdir: str) -> bool:
  """All of the run's generations are in its metrics.jsonl."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      generations = json.load(f)["loop"]["generations"]
  except (OSError, ValueError, KeyError):
    return False
  done = {r["generation"] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))}
  return set(range(1, generations + 1)) <= done


def write_spec(sweep_dir: str, config: str, axes, seeds, extra, claim: str = "") -> None:
  """Records the sweep; a directory holding another sweep's spec is refused."""
  spec = {"config": config, "grid": [[f, v] for f, v in axes], "seeds": seeds,
          "overrides": extra, "claim": claim}
  path = os.path.join(sweep_dir, SPEC)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    if old != spec:
      raise ValueError(f"{sweep_dir} holds another sweep ({path}: {old}); use another "
                       "--workdir for this one.")
    return
  os.makedirs(sweep_dir, exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(spec, f, indent=2)
  os.replace(path + ".tmp", path)


def read_spec(sweep_dir: str) -> dict:
  with open(os.path.join(sweep_dir, SPEC)) as f:
    return json.load(f)


def read_runs(sweep_dir: str) -> dict[tuple, list[list[dict]]]:
  """cell -> the metric rows of each of its runs that has any (finished or not)."""
  spec = read_spec(sweep_dir)
  cells: dict[tuple, list[list[dict]]] = {}
  for run in expand([(f, v) for f, v in spec["grid"]], spec["seeds"]):
    rows = read_jsonl(os.path.join(sweep_dir, run.name, "metrics.jsonl"))
    if rows:  # each row knows its seed, to pair arms seed by seed
      rows = sorted((r | {"seed": run.seed} for r in rows), key=lambda r: r["generation"])
      cells.setdefault(run.cell, []).append(rows)
  return cells
