"""Fashion-MNIST (Debian's dataset-fashion-mnist, read from its IDX files): the second real
dataset, at 16x16, sized for about 45 minutes of `make fashion` on a 2-core CPU (vanilla,
a 1.1M-parameter UNet, 450 s per generation, 6 generations; measured 2026-12-05).

  sudo apt-get install dataset-fashion-mnist     # the IDX files, to /usr/share/datasets/
  make fashion       # vanilla, runs/fashion/report.md; verdict in runs/fashion/compare/

Measured, seed 0, generations 1 -> 6 (README, "A second real dataset"): gen score / held-out
score 1002 / 1369 = 0.73 -> 0.18 (the verdict's bars: 0.7 and 0.35; 6 of 6 claims hold),
copy_frac 0 -> 0.20, FD to the full 60,000-image split 72.0k -> 287.0k (held-out real:
48.1k), probe confidence 0.76 -> 0.62 (real 0.80).

Any MNIST-format directory works the same way: `--config.data.name=idx
--config.data.path=DIR` (files `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`).

Variants (after the colon): `greedy`, `threshold`, `random`, `smoke` (seconds, for tests).
"""

from collapse_jax.config_lib import (
    SELECTION_VARIANTS,
    apply_selection_variant,
    apply_smoke,
    base_config,
    parse_variants,
)

VARIANTS = ("smoke", *SELECTION_VARIANTS)


def get_config(arg=None, config_file="configs/fashion_mnist.py"):
  variants = parse_variants(arg, VARIANTS, config_file)
  config = base_config()
  config.data.name = "fashion_mnist"
  config.data.resolution = 16  # 28x28 -> 16x16 (bicubic): 4x digits' pixels
  config.model.channels = (32, 64, 64)  # 16 -> 8 -> 4
  config.model.layers_per_block = 1
  config.model.attention_levels = ()
  config.model.norm_groups = 8
  config.optim.lr = 2e-3
  config.optim.warmup_steps = 100
  config.train.num_steps = 2000
  config.train.batch_size = 64
  config.train.ema_decay = 0.995
  config.train.checkpoint_every = 1000
  config.train.log_every = 200
  config.sample.method = "ddim"
  config.sample.num_steps = 50
  config.sample.batch_size = 256
  config.sample.num_images = 100
  config.loop.generations = 6
  config.loop.n_train = 256
  config.loop.tau0 = 1500.0  # 16x16 pixel distances on the 0-255 scale
  apply_selection_variant(config, variants)
  if "smoke" in variants:
    config.model.channels = (16, 16)
    apply_smoke(config)
    config.sample.batch_size = 64
    config.sample.num_images = 16
    config.loop.n_train = 64
    config.loop.gen_score_samples = 32
  return config
