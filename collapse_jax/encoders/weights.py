"""Loading pretrained encoder weights from local files into Flax parameter trees.

Every leaf of the model's (abstract) parameter tree is looked up by name in the checkpoint;
a missing or mis-shaped tensor is an error that names it. Converted checkpoints are one
msgpack file holding {kind, config, params} (see scripts/convert_weights.py).
"""

import os
from collections.abc import Callable

import jax
import numpy as np
from flax import serialization, traverse_util

from collapse_jax.errors import DataPathError


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  from safetensors.numpy import load_file

  return {k: np.asarray(v, np.float32) for k, v in load_file(path).items()}


def read_torch(path: str) -> dict[str, np.ndarray]:
  """A PyTorch state-dict file (.pth); needs torch, which the package does not depend on."""
  try:
    import torch
  except ImportError as e:
    raise ImportError(
        f"reading {path} needs PyTorch. Convert it once where torch is installed: "
        f"python scripts/convert_weights.py --kind inception --src {path} --dst OUT.msgpack, "
        "then point the config at OUT.msgpack.") from e
  state = torch.load(path, map_location="cpu", weights_only=True)
  state = state.get("state_dict", state)
  return {k: v.float().numpy() for k, v in state.items()}


def fill_tree(abstract, tensors: dict[str, np.ndarray],
              key_fn: Callable[[tuple[str, ...]], tuple[str, str]],
              convert_fn: Callable[[np.ndarray, str], np.ndarray], source: str):
  """Builds a params tree shaped like `abstract` from named checkpoint tensors."""
  flat = traverse_util.flatten_dict(abstract)
  out, problems = {}, []
  for path, leaf in flat.items():
    name, layout = key_fn(path)
    if name not in tensors:
      problems.append(f"missing {name} (for {'/'.join(path)})")
      continue
    value = convert_fn(np.asarray(tensors[name], np.float32), layout)
    if value.shape != leaf.shape:
      problems.append(f"{name} has shape {tensors[name].shape}; the model needs "
                      f"{leaf.shape} (after layout change) for {'/'.join(path)}")
      continue
    out[path] = value
  if problems:
    shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8
                                       else "")
    raise ValueError(f"weights in {source} do not fit the model: {shown}. Check that the file "
                     "is the checkpoint the config names (and its config.json matches).")
  return traverse_util.unflatten_dict(out)


def save_converted(path: str, kind: str, config: dict, params) -> None:
  """Writes {kind, config, params} as one msgpack file, atomically."""
  blob = serialization.msgpack_serialize(
      {"kind": kind, "config": config, "params": jax.tree.map(np.asarray, params)})
  tmp = f"{path}.tmp"
  with open(tmp, "wb") as f:
    f.write(blob)
  os.replace(tmp, path)


def load_converted(path: str, kind: str) -> tuple[dict, dict]:
  """(config, params) of a file written by `save_converted`, checking that it holds `kind`."""
  if not os.path.exists(path):
    raise DataPathError(f"{kind} weights: {path} does not exist. Give a local path (see "
                            "README, 'Real data and encoders').")
  with open(path, "rb") as f:
    d = serialization.msgpack_restore(f.read())
  if not isinstance(d, dict) or d.get("kind") != kind:
    found = d.get("kind") if isinstance(d, dict) else type(d).__name__
    raise ValueError(f"{path} holds {found!r} weights, not {kind!r}; convert the right "
                     "checkpoint with scripts/convert_weights.py.")
  return dict(d.get("config") or {}), d["params"]
