"""Encoders by name, and conversion of PyTorch checkpoints to the package's msgpack format."""

import dataclasses

import jax.numpy as jnp

from collapse_jax.encoders import dinov2, inception, weights
from collapse_jax.encoders.extract import Encoder

KINDS = ("dinov2", "inception")


def load_encoder(kind: str, path: str, dtype: str = "float32") -> Encoder:
  """`kind` in KINDS, weights from a local `path` (HF dir, .pth, or converted .msgpack)."""
  if not path:
    field = "eval.fid_weights" if kind == "inception" else "features_weights"
    raise ValueError(f"{kind} features need local weights: set config.{field} to a local "
                     "path (nothing is downloaded at run time).")
  dt = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype]
  if kind == "dinov2":
    return dinov2.dinov2_encoder(path, dt)
  if kind == "inception":
    return inception.inception_encoder(path, dt)
  raise ValueError(f"unknown encoder {kind!r}; choose one of {KINDS}.")


def convert(kind: str, src: str, dst: str) -> None:
  """PyTorch checkpoint (HF DINOv2 directory, pytorch-fid .pth) -> one msgpack file."""
  if kind == "dinov2":
    model, params = dinov2.load_dinov2(src)
    config = dataclasses.asdict(model.config)
  elif kind == "inception":
    _, params = inception.load_inception(src)
    config = {}
  else:
    raise ValueError(f"--kind={kind!r}; choose one of {KINDS}.")
  weights.save_converted(dst, kind, config, params)
