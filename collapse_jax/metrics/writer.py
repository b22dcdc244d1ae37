"""Scalar metrics as JSON lines and CSV (always), plus TensorBoard when tensorboardX is there.

clu's own writers import TensorFlow, which this stack does not need; these files are what a
user loads with pandas (`pd.read_json(path, lines=True)`).
"""

import csv
import io
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
    with open(self.jsonl, "a") as f:
      f.write(_row_line(step, scalars))
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(np.asarray(v)), int(step))

  def close(self) -> None:
    """Writes the CSV from the JSON lines and flushes TensorBoard."""
    if not self.enabled:
      return
    _write_csv(self.csv, read_jsonl(self.jsonl))
    if self._tb is not None:
      self._tb.close()


def _row_line(step: int, scalars: dict) -> str:
  return json.dumps({"step": int(step), **{k: _plain(v) for k, v in scalars.items()}}) + "\n"


def _write_atomic(path: str, text: str) -> None:
  with open(path + ".tmp", "w", newline="") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def sync_rows(workdir: str, name: str, rows: list[tuple[int, dict]]) -> str | None:
  """Makes `<name>.jsonl` and `<name>.csv` hold exactly `rows` ((step, scalars) pairs, the
  run state's record). Rows missing at the end are appended (the normal case, TensorBoard
  too); a file that disagrees otherwise (a torn line, a lost or extra row, an edit) is
  rewritten atomically (temp file + rename). Returns what was repaired, or None."""
  if jax.process_index() != 0:
    return None
  jsonl, csv_path = (os.path.join(workdir, f"{name}.{ext}") for ext in ("jsonl", "csv"))
  want = "".join(_row_line(step, scalars) for step, scalars in rows)
  have = open(jsonl).read() if os.path.exists(jsonl) else ""
  if want.startswith(have) and (not have or have.endswith("\n")):
    writer = MetricWriter(workdir, name)
    for step, scalars in rows[have.count("\n"):]:
      writer.write_scalars(step, scalars)
    writer.close()
    return None
  lines = have.splitlines(keepends=True)
  torn = sum(1 for line in lines if not line.endswith("\n") or not _parses(line))
  _write_atomic(jsonl, want)
  _write_csv(csv_path, read_jsonl(jsonl))
  return (f"{jsonl} held {len(lines)} lines ({torn} torn) where the run state has "
          f"{len(rows)} finished rows; rewrote it and {name}.csv from the run state")


def _write_csv(path: str, rows: list[dict]) -> None:
  keys = list(dict.fromkeys(k for r in rows for k in r))
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=keys)
  writer.writeheader()
  writer.writerows(rows)
  _write_atomic(path, buf.getvalue())


def _parses(line: str) -> bool:
  try:
    json.loads(line)
  except json.JSONDecodeError:
    return False
  return True


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
