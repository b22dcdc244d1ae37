"""The embedded default: scikit-learn's 8x8 digits, sized to run in minutes on a CPU.

  python scripts/recursive.py --config configs/digits.py --workdir runs/digits_vanilla
  python scripts/recursive.py --config configs/digits.py:greedy --workdir runs/digits_greedy
  python scripts/train.py --config configs/digits.py --workdir runs/digits_one_model

Variants (after the colon): `greedy`, `threshold`, `random` (selection from a 2N pool),
`smoke` (seconds, for tests; combine as `smoke,greedy`).

What it trades away against the paper: N = 1,000 real 8x8 digits instead of 32,768 32x32
images; a 3-level UNet of 0.28M parameters instead of UNet48's 16M (~1,600 images/s on a
2-core CPU); 1,500 steps of batch 64 at lr 1e-3 instead of ~128k steps of batch 128 at
1e-4; 50-step DDIM sampling instead of 1000-step ancestral DDPM; 4 generations, not 8.
The schedule (T = 1000, linear betas), loss, optimizer family and selection are the paper's.
"""

from collapse_jax.config_lib import apply_selection_variant, base_config


def get_config(arg=None):
  variants = set(arg.split(",")) if arg else set()
  unknown = variants - {"smoke", "greedy", "threshold", "random"}
  if unknown:
    raise ValueError(f"configs/digits.py: unknown variants {sorted(unknown)}; "
                     "use smoke, greedy, threshold or random.")
  config = base_config()
  config.data.name = "digits"
  config.model.channels = (16, 32, 32)  # 8x8 -> 4x4 -> 2x2
  config.model.layers_per_block = 1
  config.model.attention_levels = ()
  config.model.norm_groups = 8
  config.optim.lr = 3e-3
  config.optim.warmup_steps = 100
  config.train.num_steps = 1600
  config.train.batch_size = 64
  config.train.ema_decay = 0.995
  config.train.checkpoint_every = 800
  config.train.log_every = 200
  config.sample.method = "ddim"
  config.sample.num_steps = 50
  config.sample.batch_size = 512
  config.sample.num_images = 100
  config.loop.generations = 6
  config.loop.n_train = 128
  # Pixel distances of 8x8 digits on the 0-255 scale: nearest neighbours lie ~300-600 apart
  # (the paper's 2000 is for 32x32x3).
  config.loop.tau0 = 600.0
  apply_selection_variant(config, variants)
  if "smoke" in variants:
    config.model.channels = (16, 16)
    config.model.attention_levels = (1,)
    config.train.num_steps = 4
    config.train.batch_size = 16
    config.train.log_every = 2
    config.train.checkpoint_every = 2
    config.optim.warmup_steps = 2
    config.sample.num_steps = 4
    config.sample.batch_size = 64
    config.sample.num_images = 16
    config.loop.generations = 2
    config.loop.n_train = 64
    config.loop.gen_score_samples = 32
  return config
