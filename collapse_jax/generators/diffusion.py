"""The diffusion model as a loop generator: a denoiser network (UNet for images, MLP for
vectors) trained by `training.fit` and sampled by `generate.generate`, sharded over the mesh.

Each generation's model checkpoints in workdir/gen_XX/model and resumes from there.
"""

import json
import logging
import os
import shutil

import jax
import numpy as np
from jax.experimental import multihost_utils

from collapse_jax import config_lib
from collapse_jax.data.sets import ImageSet
from collapse_jax.diffusion.fit import fit
from collapse_jax.diffusion.generate import generate
from collapse_jax.diffusion.schedule import schedule_from_config
from collapse_jax.generators.base import Fitted
from collapse_jax.models.mlp import mlp_from_config
from collapse_jax.models.unet import unet_from_config
from collapse_jax.sharding import put_rows

log = logging.getLogger(__name__)

SAME_FIRST_MODEL = ("loop.n_train", "loop.n_heldout")  # the loop fields gen 1 depends on


def model_dir(workdir: str, generation: int) -> str:
  return os.path.join(workdir, f"gen_{generation:02d}", "model")


def first_model_checkpoint(run: str, num_steps: int) -> str:
  """The directory of a run's final generation-1 checkpoint (orbax renames it into place)."""
  return os.path.join(model_dir(run, 1), "checkpoints", str(num_steps))


def adopt_first_model(config, source_run: str, target_dir: str) -> bool:
  """Copies `source_run`'s finished generation-1 model checkpoint into `target_dir` when it
  is the model this run would train: the same config outside `loop` (seed, data, model,
  training) and the same N and held-out split give the same real set, batches and keys.
  Returns whether it did; `fit` then restores it at its last step and trains nothing."""
  try:
    with open(os.path.join(source_run, "config.json")) as f:
      theirs = config_lib.flatten(json.load(f))
  except OSError:
    return False
  mine = config_lib.flatten(json.loads(config.to_json()))
  differ = [k for k in mine.keys() | theirs.keys()
            if (not k.startswith("loop.") or k in SAME_FIRST_MODEL)
            and mine.get(k) != theirs.get(k)]
  final = first_model_checkpoint(source_run, config.train.num_steps)
  target = os.path.join(target_dir, "checkpoints")
  if differ or not os.path.isdir(final) or os.path.exists(target):
    if differ:
      log.info("not adopting %s's first model: %s differ", source_run, ", ".join(differ[:4]))
    return False
  os.makedirs(target_dir, exist_ok=True)
  shutil.copytree(final, os.path.join(target + ".tmp", os.path.basename(final)))
  os.replace(target + ".tmp", target)  # whole or absent: a kill here leaves no half copy
  log.info("generation 1: adopted the identical model trained by %s", source_run)
  return True


def network_from_config(model_config, data_shape: tuple, num_classes: int):
  """The denoiser of `config.model.kind`: the UNet for (H, W, C) images, the MLP for (d,)."""
  if model_config.kind == "mlp":
    return mlp_from_config(model_config, data_shape[-1], num_classes)
  return unet_from_config(model_config, data_shape, num_classes)


def sample_denoiser(model, params, key, n: int, labels, *, mesh, schedule, data_shape,
                    sample_config):
  """n samples of a denoiser (`.apply`, `.num_classes`) by the configured DDPM/DDIM sampler,
  in the stored form (uint8 images, float32 vectors), split by rows over the mesh."""
  with jax.set_mesh(mesh):
    out = generate(params, key, n, mesh=mesh, model=model, schedule=schedule,
                   image_shape=data_shape, sample_config=sample_config, labels=labels,
                   as_uint8=len(data_shape) == 3)
    return out.block_until_ready()  # dispatch is asynchronous: callers time the sampling


class Diffusion:
  """DDPM training from scratch each generation (or fine-tuning, config.loop.finetune)."""

  def __init__(self, config, data_shape: tuple, num_classes: int, mesh):
    self.config, self.mesh, self.data_shape = config, mesh, tuple(data_shape)
    self.network = network_from_config(config.model, self.data_shape, num_classes)
    self.conditional = bool(self.network.num_classes)
    self.schedule = schedule_from_config(config)

  def fit(self, data: ImageSet, key, *, generation: int, workdir: str,
          log_prefix: str = "") -> Fitted:
    lc, target = self.config.loop, model_dir(workdir, generation)
    arrays = {"image": data.images}  # uint8 on the devices; batches mapped to [-1, 1]
    if self.conditional:
      arrays["label"] = put_rows(data.labels, self.mesh)
    if generation == 1 and lc.first_model_from and jax.process_index() == 0:
      adopt_first_model(self.config, lc.first_model_from, target)
    multihost_utils.sync_global_devices("diffusion:first_model")
    init_from = model_dir(workdir, generation - 1) if lc.finetune and generation > 1 else None
    with jax.set_mesh(self.mesh):
      state = fit(self.config, arrays, target, self.mesh, self.network, key,
                  log_prefix=log_prefix, init_from=init_from)
    return Fitted(state.sampling_params)

  def sample(self, fitted: Fitted, key, n: int, labels: np.ndarray | None = None):
    return sample_denoiser(self.network, fitted.state, key, n, labels, mesh=self.mesh,
                           schedule=self.schedule, data_shape=self.data_shape,
                           sample_config=self.config.sample)
