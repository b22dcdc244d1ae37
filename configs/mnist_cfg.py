"""The paper's MNIST classifier-free-guidance study (class-conditional loop on MNIST).

  python scripts/recursive.py --config configs/mnist_cfg.py --workdir runs/mnist_cfg \
      --config.data.path=/path/to/tfds_data_dir
"""

from collapse_jax.config_lib import base_config


def get_config(arg=None):
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
  if arg == "greedy":
    config.loop.selection = "greedy"
    config.loop.pool_factor = 2
  return config
