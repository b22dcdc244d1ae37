"""The paper's MNIST classifier-free-guidance study (class-conditional loop on MNIST).

  python scripts/recursive.py --config configs/mnist_cfg.py --workdir runs/mnist_cfg \
      --config.data.path=/path/to/tfds_data_dir

Variants: `greedy`, `threshold`, `random` (selection from a 2N pool), `smoke`.
"""

from collapse_jax.config_lib import (
    SELECTION_VARIANTS,
    apply_selection_variant,
    apply_smoke,
    base_config,
    parse_variants,
)

VARIANTS = ("smoke", *SELECTION_VARIANTS)


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, "configs/mnist_cfg.py")
  config = base_config()
  config.data.name = "mnist"
  config.model.channels = (32, 64, 64)  # 28x28 is padded to 32x32 by the loader
  config.model.attention_levels = (2,)
  config.model.class_conditional = True
  config.sample.guidance_scale = 2.0
  config.sample.method = "ddim"
  config.sample.num_steps = 100
  config.loop.generations = 8
  config.loop.n_train = 32_768
  apply_selection_variant(config, variants)
  if "smoke" in variants:
    apply_smoke(config)
  return config
