"""Scalar metrics as JSON lines and CSV (always), plus TensorBoard when tensorboardX is there.

clu's own writers import TensorFlow, which this stack does not need; these files are what a
user loads with pandas (`pd.read_json(path, lines=True)`).
"""

import csv
import json
import logging
import math
import os

import jax
import numpy as np


def _plain(value):
  value = np.asarray(value).item() if np.ndim(value) == 0 else value
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


class MetricWriter:
  """Appends `{'step': s, **scalars}` rows to `<name>.jsonl`; mirrors them to CSV and TB.

  Only process 0 writes. Rows past `resume_step` (written after the last checkpoint of
  a killed run) are dropped on open so a resumed run does not duplicate them.
  """

  def __init__(self, workdir: str, name: str, resume_step: int | None = None):
    self.enabled = jax.process_index() == 0
    self.jsonl = os.path.join(workdir, f"{name}.jsonl")
    self.csv = os.path.join(workdir, f"{name}.csv")
    self._tb = None
    if not self.enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    if resume_step is not None:
      rows = [r for r in read_jsonl(self.jsonl) if r["step"] <= resume_step]
      with open(self.jsonl, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    try:
      from tensorboardX import SummaryWriter
    except ImportError:
      logging.info("tensorboardX not installed: writing JSON lines and CSV only.")
    else:
      self._tb = SummaryWriter(os.path.join(workdir, "tb", name))

  def write_scalars(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), **{k: _plain(v) for k, v in scalars.items()}}
    with open(self.jsonl, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(np.asarray(v)), int(step))

  def close(self) -> None:
    """Writes the CSV from the JSON lines and flushes TensorBoard."""
    if not self.enabled:
      return
    rows = read_jsonl(self.jsonl)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(self.csv, "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=keys)
      writer.writeheader()
      writer.writerows(rows)
    if self._tb is not None:
      self._tb.close()


def read_jsonl(path: str) -> list[dict]:
  """All rows of a JSON-lines file ([] if missing); a torn last line is ignored."""
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        break
  return rows
