"""The paper's CIFAR-10 setting: UNet48, N = 32,768 at 32x32, ~128k steps, DDPM 1000 steps.

  python scripts/recursive.py --config configs/cifar10.py --workdir runs/cifar10 \
      --config.data.path=/path/to/tfds_data_dir [--config.loop.selection=greedy]

Variants: `accumulate`, `greedy`, `threshold`, `random`, `dino` (comma-separated). `dino` selects in
DINOv2 space with the paper's tau0 = 60 (decay 0.95 replace, 0.80 accumulate) and needs
--config.features_weights=/path/to/dinov2-small; --config.eval.fid_weights=/path/to/
pt_inception-2015-12-05-6726825d.pth adds FID and precision/recall. Needs an accelerator; the
prepared TFDS data must already be on disk (nothing is downloaded).
"""

from collapse_jax.config_lib import (
    SELECTION_VARIANTS,
    apply_selection_variant,
    base_config,
    parse_variants,
)
from collapse_jax.models.unet import PRESETS

VARIANTS = ("accumulate", "dino", *SELECTION_VARIANTS)


def get_config(arg=None, config_file="configs/cifar10.py"):
  variants = parse_variants(arg, VARIANTS, config_file)
  config = base_config()
  config.data.name = "cifar10"
  config.model.channels = PRESETS["unet48"]
  config.model.dtype = "bfloat16"
  config.train.num_steps = 128_000
  config.train.batch_size = 128
  config.sample.method = "ddpm"
  config.sample.batch_size = 1024
  config.loop.generations = 8
  config.loop.n_train = 32_768
  if "accumulate" in variants:
    config.loop.paradigm = "accumulate"
  apply_selection_variant(config, variants)
  if "dino" in variants:
    config.features = "dinov2"
    config.loop.tau0 = 60.0
    config.loop.decay = 0.80 if "accumulate" in variants else 0.95
  return config
