"""`train_and_evaluate`: train one diffusion model and write its samples (scripts/train.py)."""

import json
import logging
import os

import jax
import numpy as np

from collapse_jax import config_lib, platform
from collapse_jax.diffusion.fit import fit
from collapse_jax.diffusion.generate import generate
from collapse_jax.diffusion.schedule import schedule_from_config
from collapse_jax.errors import ConfigError
from collapse_jax.images import save_grid
from collapse_jax.models.unet import unet_from_config
from collapse_jax.sharding import make_mesh, to_host

log = logging.getLogger(__name__)


def train_and_evaluate(config, workdir: str, overwrite: bool = False,
                       preflight=None) -> np.ndarray:
  """Trains on `config.data`, then samples `config.sample.num_images` images.

  Writes workdir/{config.json, train.jsonl, train.csv, samples.npz, samples.png} and
  returns the samples in [-1, 1]. A workdir of another config is refused unless `overwrite`;
  `preflight(config)` runs once config and data are valid.
  """
  if config.model.kind != "unet":
    raise ConfigError(f"config.model.kind={config.model.kind!r}: scripts/train.py trains the "
                     "UNet on images; run other kinds through scripts/recursive.py.")
  ds, image_shape = config_lib.prepare_run(config, workdir, overwrite, preflight)
  mesh = make_mesh(config.mesh)
  for line in platform.describe(mesh):
    log.info("%s", line)
  model = unet_from_config(config.model, image_shape, ds.num_classes)
  rng = jax.random.key(config.seed)
  train_rng, sample_rng = jax.random.split(rng)
  arrays = {"image": ds.images}
  if model.num_classes:
    arrays["label"] = ds.labels
  log.info("data %s: %d images of shape %s; mesh %s", config.data.name, len(ds.images),
               image_shape, dict(mesh.shape))
  with jax.set_mesh(mesh):
    state = fit(config, arrays, workdir, mesh, model, train_rng)
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    params = state.sampling_params
    n = config.sample.num_images
    labels = np.arange(n, dtype=np.int32) % ds.num_classes if model.num_classes else None
    samples = to_host(generate(
        params, sample_rng, n, mesh=mesh, model=model, schedule=schedule_from_config(config),
        image_shape=image_shape, sample_config=config.sample, labels=labels, as_uint8=False,
    ))
  if jax.process_index() == 0:
    extra = {} if labels is None else {"labels": labels}
    np.savez(os.path.join(workdir, "samples.npz"), images=samples, **extra)
    scale = max(1, 64 // image_shape[0])
    save_grid(samples, os.path.join(workdir, "samples.png"), scale=scale)
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump({"num_params": int(n_params), "num_samples": int(n),
                 "finite": bool(np.isfinite(samples).all())}, f, indent=2)
  log.info("wrote %d samples to %s (model: %d parameters)", n, workdir, n_params)
  return samples
