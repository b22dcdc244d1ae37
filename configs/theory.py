"""Closed-form generators and vector data: the loop where collapse has a law to obey.

  python scripts/recursive.py --config configs/theory.py:gaussian --workdir runs/theory_gauss
  python scripts/recursive.py --config configs/theory.py:memorizer --workdir runs/theory_mem
  python scripts/recursive.py --config configs/theory.py:kde --workdir runs/theory_kde
  python scripts/recursive.py --config configs/theory.py:mog --workdir runs/theory_mog

Variants (after the colon, one of):
- `gaussian`: the maximum-likelihood Gaussian (model.kind=gaussian) on 2-D Gaussian data
  with variances 1 and 1/2; `model_entropy` follows the Wishart law of
  `generators/gaussian.py` under replace.
- `memorizer`: the exact optimal denoiser of the training set on the embedded 8x8 digits,
  N = 64, sampled by 50-step DDIM: the memorization limit the paper's models tend to.
  Its samples are exact (uint8) copies, so `unique_copied` follows Wright-Fisher resampling.
- `kde`: a training point plus N(0, 0.3^2 I) noise on the 2-D Gaussian data: pure noise
  accumulation (total variance grows by d bandwidth^2 per generation).
- `mog`: the diffusion model itself on vector data: the MLP denoiser (model.kind=mlp) on a
  2-D mixture of 8 Gaussians, N = 256; each generation's report shows the scatter plot of
  the training set, the pool and the selected points.
Add `,greedy`, `,threshold` or `,random` for selection from a 2N pool; `,smoke` for tests.
Any kind runs on any of these data through --config.model.kind / --config.data.name.
"""

from collapse_jax.config_lib import (
    SELECTION_VARIANTS,
    apply_selection_variant,
    apply_smoke,
    base_config,
    parse_variants,
)

VARIANTS = ("gaussian", "memorizer", "kde", "mog")


def get_config(arg=None):
  variants = parse_variants(arg, (*VARIANTS, "smoke", *SELECTION_VARIANTS),
                            "configs/theory.py") or {"gaussian"}
  main = variants & set(VARIANTS)
  if len(main) != 1:
    raise ValueError(f"configs/theory.py:{arg}: name one of {VARIANTS} (plus smoke, "
                     "greedy, threshold or random).")
  (main,) = main
  config = base_config()
  config.loop.generations = 8
  config.loop.n_train = 100
  config.loop.nn_panel = 8
  config.sample.method = "ddim"
  config.sample.num_steps = 50
  config.sample.batch_size = 1024
  if main in ("gaussian", "kde", "mog"):
    config.data.name = "mog" if main == "mog" else "gaussian"
    config.data.dim = 2
    config.data.scale = 1.0
    config.data.decay = 1.0  # variances 1, 1/2
    config.sample.clip_x0 = False  # vectors are not bounded to [-1, 1]
    config.loop.tau0 = 0.5  # threshold selection: distances in the data's own units
  config.model.kind = "memorizer" if main == "memorizer" else main
  if main == "kde":
    config.model.bandwidth = 0.3
  if main == "memorizer":
    config.data.name = "digits"
    config.loop.n_train = 64
    config.loop.tau0 = 600.0  # as configs/digits.py: 8x8 digits on the 0-255 scale
  if main == "mog":
    config.model.kind = "mlp"
    config.data.components = 8
    config.data.spread = 2.0
    config.data.scale = 0.15
    config.loop.n_train = 256
    config.loop.generations = 6
    config.model.hidden = 128
    config.model.depth = 3
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 100
    config.train.batch_size = 128
    config.train.num_steps = 3000
    config.train.ema_decay = 0.999
    config.train.log_every = 500
    config.train.checkpoint_every = 1500
    # Deterministic DDIM threw ~0.5% of samples far out (|x| up to ~40) where the MLP's
    # high-noise epsilon is off; the stochastic sampler corrects them (FD to the real set,
    # 2,000 samples of one trained model: 0.41 at eta 0, 0.014 at eta 1).
    config.sample.eta = 1.0
  apply_selection_variant(config, variants)
  if "smoke" in variants:
    apply_smoke(config)
    config.loop.n_heldout = 100
    config.loop.gen_score_samples = 64
    config.data.max_examples = 2000 if config.data.name != "digits" else 0
  return config
