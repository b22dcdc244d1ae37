"""The embedded default: scikit-learn's 8x8 digits, sized to train in minutes on a CPU.

  python scripts/train.py --config configs/digits.py --workdir runs/digits
  python scripts/train.py --config configs/digits.py:smoke --workdir /tmp/smoke

What it trades away against the paper: a 3-level UNet of 0.28M parameters instead of
UNet48's 16M (~1,600 images/s on a 2-core CPU), 2,000 steps of batch 64 at lr 1e-3 instead
of ~128k steps of batch 128 at 1e-4, and 50-step DDIM sampling instead of 1000-step
ancestral DDPM. The schedule (T = 1000, linear
betas), the loss and the optimizer family are the paper's.
"""

from collapse_jax.config_lib import base_config


def get_config(arg=None):
  config = base_config()
  config.data.name = "digits"
  config.model.channels = (16, 32, 32)  # 8x8 -> 4x4 -> 2x2
  config.model.layers_per_block = 1
  config.model.attention_levels = (2,)
  config.model.norm_groups = 8
  config.optim.lr = 1e-3
  config.optim.warmup_steps = 100
  config.train.num_steps = 2000
  config.train.batch_size = 64
  config.train.ema_decay = 0.999
  config.train.checkpoint_every = 500
  config.sample.method = "ddim"
  config.sample.num_steps = 50
  config.sample.batch_size = 512
  config.sample.num_images = 100
  if arg == "smoke":  # seconds, for tests
    config.model.channels = (16, 16)
    config.model.attention_levels = (1,)
    config.train.num_steps = 4
    config.train.batch_size = 16
    config.train.log_every = 2
    config.train.checkpoint_every = 2
    config.optim.warmup_steps = 2
    config.sample.num_steps = 4
    config.sample.batch_size = 16
    config.sample.num_images = 16
  elif arg:
    raise ValueError(f"configs/digits.py: unknown variant {arg!r}; use 'smoke' or nothing.")
  return config
