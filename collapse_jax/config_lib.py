"""The full default config (every field a run reads) and its validation.

Config files in `configs/` start from `base_config()` and override fields, so every
field exists (unknown `--config.x` overrides are rejected by ml_collections) and
`validate` can name any bad value together with the fix.
"""

import json
import logging
import os
import shutil

import jax
import ml_collections
from jax.experimental import multihost_utils

from collapse_jax import distributed
from collapse_jax import workdir as workdir_lock
from collapse_jax.errors import ConfigError
from collapse_jax.models.unet import PRESETS

LOOP_SELECTIONS = ("none", "random", "greedy", "threshold")
# config.model.kind: the names `generators.KINDS` maps to classes. Kept here, below the
# generators, so validating a config never imports a model (tests hold the two equal).
MODEL_KINDS = ("unet", "mlp", "gaussian", "memorizer", "kde")


def base_config() -> ml_collections.ConfigDict:
  """The paper's model and training settings (PAPER.md), on the embedded digits."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(
      name="digits",  # digits (embedded) | mnist | cifar10 (TFDS) | ffhq | images (local files)
      path="",  # TFDS data_dir, or a folder of images / array_record files of encoded images
      split="train",  # TFDS split
      resolution=0,  # square side images are resized to; 0 keeps them as stored
      labels=False,  # image folders: first-level subdirectories are classes
      max_examples=0,  # 0 = all (gaussian / mog: how many points are drawn; 0 = 10,000)
      # Vector data (data.name = gaussian | mog), drawn once from data.seed (not config.seed:
      # every loop seed starts from the same real set, as with a real dataset):
      dim=2,  # dimension d
      scale=1.0,  # gaussian: largest standard deviation; mog: each component's
      decay=0.0,  # gaussian: variances scale**2 * (i + 1)**-decay (0 = isotropic)
      components=8,  # mog: number of equally weighted components
      spread=4.0,  # mog: standard deviation of the component means
      seed=0,
  )
  c.model = dict(
      # unet | mlp (diffusion models) | gaussian | memorizer | kde (closed form, no training)
      kind="unet",
      channels=PRESETS["unet48"],  # widths per resolution level
      layers_per_block=2,
      attention_levels=(4,),  # 0-based down levels; the 5th down / 2nd up block
      norm_groups=16,
      head_dim=8,
      class_conditional=False,
      dropout=0.0,
      dtype="float32",  # compute dtype: "float32" or "bfloat16" (params stay float32)
      # unet: XLA:CPU's faster forms (matmul convs on the smallest levels, two-pass GroupNorm
      # gradient); same parameters and results to float rounding. No effect off the CPU.
      cpu_kernels=True,
      hidden=256,  # mlp: width of the residual blocks
      depth=3,  # mlp: number of residual blocks
      bandwidth=0.1,  # kde: standard deviation of the noise added to a training point
  )
  c.diffusion = dict(num_steps=1000, beta_start=1e-4, beta_end=0.02)
  c.optim = dict(
      lr=1e-4, b1=0.95, b2=0.999, eps=1e-8, weight_decay=1e-6, warmup_steps=500, grad_clip=1.0
  )
  c.train = dict(
      batch_size=128,
      num_steps=128_000,
      ema_decay=0.0,  # 0 disables EMA (the paper's setting)
      label_dropout=0.1,  # classifier-free guidance training, class-conditional only
      log_every=100,
      checkpoint_every=2000,
      # "a:b" writes a jax.profiler trace of steps a+1..b to <workdir>/profile (TensorBoard's
      # profile plugin or Perfetto); "" for none.
      profile_steps="",
      # Train steps per jitted call (lax.scan; the host dispatches one call per K steps):
      # 0 = the platform's default (1 on CPU, diffusion/fit.py:AUTO_STEPS_PER_CALL else).
      steps_per_call=0,
  )
  c.sample = dict(
      method="ddpm",  # "ddpm" (ancestral, all T steps) or "ddim"
      num_steps=1000,  # DDIM steps (ignored by ddpm)
      eta=0.0,
      guidance_scale=1.0,
      clip_x0=True,
      batch_size=1024,
      num_images=64,  # scripts/train.py: images written after training
  )
  # The space of selection: "pixels", "dinov2" (its weights below) or "learned" (a small CNN
  # trained on the held-out labelled real images). Each space's metrics are reported whenever
  # it is available, whichever selects.
  c.features = "pixels"
  c.features_weights = ""  # local HF facebook/dinov2-small dir or converted .msgpack
  c.eval = dict(
      fid_weights="",  # local pytorch-fid Inception .pth or converted .msgpack; "" = no FID
      dtype="float32",  # encoder compute dtype: "float32" or "bfloat16"
      batch_size=256,  # images per encoder call (split over the devices)
      pr_k=3,  # precision/recall neighbourhood size (Kynkaanniemi et al.)
      pr_samples=10_000,  # precision/recall on at most this many real and generated images
      # A small CNN trained on the held-out labelled real images (encoders/learned.py): its
      # space's entropy, gen score and FD in every row (learned_*), when such images exist.
      learned=True,
  )
  c.mesh = dict(data=-1, fsdp=1)  # -1: the devices left over
  # A run whose least compute time on the platform found is over an hour (plan/budget.py)
  # stops at start unless this is True.
  c.allow_slow_platform = False
  c.distributed = dict(
      auto=False,  # True: jax.distributed.initialize() detects the cluster (TPU pod, SLURM)
      coordinator="",  # 'host:port' of process 0 for an explicit launch
      num_processes=0,
      process_id=-1,
      cpu_collectives="gloo",  # CPU backend collectives, for multi-process CPU runs
      # A signal that also means "preempted" beside SIGTERM, e.g. SLURM's --signal=USR1@90:
      # the run checkpoints at the next step and exits 75 for a requeue.
      preemption_signal="",
  )
  c.loop = dict(
      generations=8,
      finetune=False,  # True: each model starts from the previous one (paper: from scratch)
      # Another run's workdir whose generation-1 model this run's would equal (same config
      # outside `loop`, same N and held-out split): its final checkpoint is copied instead of
      # training it again. scripts/arms.py sets it; any mismatch trains as usual.
      first_model_from="",
      paradigm="replace",  # replace | accumulate | accumulate_all | fresh
      selection="none",  # none | random | greedy | threshold
      n_train=0,  # N, the training-set size; 0 = every real image
      pool_factor=1,  # each model generates pool_factor * N candidates (paper: 2 with selection)
      fresh_fraction=0.0,  # fresh: fraction of each training set drawn from real data
      tau0=2000.0,  # threshold decay, pixel space at 32x32x3 (paper)
      decay=0.95,
      decay_every_pass=False,  # True: the authors' code (decay after every pass)
      select_per_class=True,  # class-conditional runs select within each class
      gen_score_samples=1000,
      n_heldout=1000,  # real images kept out of the loop for heldout_score (n_train=0: the rest)
      nn_panel=8,  # generated images shown beside their nearest training image
      pictures=True,  # False: no grids, scatter plots or plots (Monte Carlo over many seeds)
  )
  return c


SELECTION_VARIANTS = ("greedy", "threshold", "random")


def parse_variants(arg: str | None, allowed, config_file: str) -> set[str]:
  """The comma-separated variants after a config file's colon, each checked against
  `allowed`: an unknown one (a typo would otherwise start a different experiment) is a
  ValueError naming the valid ones."""
  variants = {v.strip() for v in arg.split(",") if v.strip()} if arg else set()
  unknown = variants - set(allowed)
  if unknown:
    raise ConfigError(f"{config_file}:{arg}: unknown variant(s) {sorted(unknown)}; valid "
                     f"variants are {sorted(allowed)} (comma-separated).")
  return variants


def apply_selection_variant(config, variants: set[str]) -> None:
  """A config-file variant naming a selection picks it, with the paper's 2N candidate pool."""
  for selection in LOOP_SELECTIONS[1:]:
    if selection in variants:
      config.loop.selection = selection
      config.loop.pool_factor = 2


def apply_smoke(config) -> None:
  """A config's `smoke` variant: a few training and sampling steps, 2 generations (tests)."""
  config.train.num_steps = 4
  config.train.batch_size = 16
  config.train.log_every = 2
  config.train.checkpoint_every = 2
  config.optim.warmup_steps = 2
  config.sample.num_steps = 4
  config.loop.generations = 2


def _check(ok: bool, field: str, message: str) -> None:
  if not ok:
    raise ConfigError(f"config.{field}: {message}")


VECTOR_DATA = ("gaussian", "mog")


def _positive_ints(config, fields) -> None:
  for field in fields:
    section, name = field.split(".")
    value = config[section][name]
    _check(isinstance(value, int) and value > 0, field,
           f"must be a positive integer, got {value!r}.")


def validate(config, image_shape: tuple[int, ...] | None = None) -> None:
  """Raises ValueError naming the first bad field; `image_shape` (H, W, C), or (d,) for
  vector data, checks that the model fits the data."""
  kind = config.model.kind
  _check(kind in MODEL_KINDS, "model.kind", f"{kind!r} is not one of {MODEL_KINDS}.")
  _positive_ints(config, ("train.batch_size", "train.num_steps", "train.log_every",
                          "train.checkpoint_every", "sample.batch_size", "sample.num_images",
                          "sample.num_steps", "diffusion.num_steps"))
  if kind == "unet":
    _validate_unet(config, image_shape)
  if kind == "mlp":
    _positive_ints(config, ("model.hidden", "model.depth"))
  _check(kind != "kde" or config.model.bandwidth > 0, "model.bandwidth", "must be positive.")
  vector = config.data.name in VECTOR_DATA
  if vector:
    _positive_ints(config, ("data.dim", "data.components"))
    _check(config.data.scale > 0 and config.data.spread >= 0, "data.scale",
           "need scale > 0 and spread >= 0.")
    _check(kind != "unet", "model.kind", f"the UNet takes images, not the vectors of "
           f"data.name={config.data.name!r}; use 'mlp' (or a closed-form kind).")
    _check(not config.sample.clip_x0, "sample.clip_x0",
           "vector data is not bounded to [-1, 1]; set --config.sample.clip_x0=False.")
  _check(kind != "mlp" or vector or (image_shape is not None and len(image_shape) == 1),
         "model.kind", "the MLP denoiser takes vector data (data.name = gaussian or mog); "
         "use 'unet' for images.")
  _check(0.0 <= config.model.dropout < 1.0, "model.dropout", "must be in [0, 1).")
  _check(0.0 <= config.train.ema_decay < 1.0, "train.ema_decay", "must be in [0, 1); 0 = off.")
  _check(0.0 <= config.train.label_dropout < 1.0, "train.label_dropout", "must be in [0, 1).")
  _check(config.optim.lr > 0, "optim.lr", "must be positive.")
  _check(config.optim.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0.")
  _check(0 < config.diffusion.beta_start < config.diffusion.beta_end < 1, "diffusion.beta_end",
         "need 0 < beta_start < beta_end < 1.")
  _check(config.sample.method in ("ddpm", "ddim"), "sample.method",
         f"{config.sample.method!r}; use 'ddpm' or 'ddim'.")
  _check(config.sample.num_steps <= config.diffusion.num_steps, "sample.num_steps",
         f"{config.sample.num_steps} DDIM steps exceed diffusion.num_steps.")
  _check(0.0 <= config.sample.eta <= 1.0, "sample.eta", "must be in [0, 1].")


def _validate_unet(config, image_shape) -> None:
  _positive_ints(config, ("model.layers_per_block", "model.norm_groups", "model.head_dim"))
  channels = tuple(config.model.channels)
  _check(len(channels) >= 1 and all(c > 0 for c in channels), "model.channels",
         f"widths must be positive, got {channels}.")
  groups = config.model.norm_groups
  bad = [c for c in channels if c % groups]
  _check(not bad, "model.channels", f"widths {bad} are not divisible by "
         f"model.norm_groups={groups}; change one or the other.")
  levels = len(channels)
  bad = [a for a in config.model.attention_levels if not 0 <= a < levels]
  _check(not bad, "model.attention_levels", f"{bad} outside the {levels} levels [0, {levels}).")
  _check(config.model.dtype in ("float32", "bfloat16"), "model.dtype",
         f"{config.model.dtype!r}; use 'float32' or 'bfloat16'.")
  if image_shape is not None:
    _check(len(image_shape) == 3, "model.kind", f"the UNet takes (H, W, C) images, not "
           f"rows of shape {tuple(image_shape)}; use 'mlp' for vector data.")
    factor = 2 ** (levels - 1)
    h, w = image_shape[:2]
    _check(h % factor == 0 and w % factor == 0, "model.channels",
           f"{levels} levels downsample by {factor}, which does not divide the "
           f"{h}x{w} images; use fewer levels or resize the data.")


def flatten(d: dict, prefix: str = "") -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1} (tuples as lists, as JSON has them)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out |= flatten(v, f"{prefix}{k}.")
    else:
      out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
  return out


LAUNCH_FIELDS = ("distributed.", "allow_slow_platform")


def prepare_workdir(config, workdir: str, overwrite: bool = False) -> None:
  """Claims the workdir (`collapse_jax.workdir`: a second live run on it is refused) and
  writes workdir/config.json; refuses a workdir that holds a run of another config.

  A resumed run must continue the same experiment: if the stored config differs, the error
  names the differing fields; `overwrite=True` deletes the old run and starts afresh.
  """
  if jax.process_index() == 0:  # a second run on this workdir stops here, touching nothing
    workdir_lock.claim(workdir)
  path = os.path.join(workdir, "config.json")
  diff = []
  if os.path.exists(path):
    with open(path) as f:
      old = flatten(json.load(f))
    new = flatten(json.loads(config.to_json()))
    # How the job is launched (coordinator, process ids: new on every requeue) is not what
    # it computes.
    diff = sorted(k for k in old.keys() | new.keys()
                  if old.get(k) != new.get(k) and not k.startswith(LAUNCH_FIELDS))
    if diff == ["loop.generations"] and not overwrite:
      extend = _check_extension(workdir, old["loop.generations"], new["loop.generations"])
      diff = []  # the same experiment, run further: the old run's files stay
      if extend and jax.process_index() == 0:
        logging.info("%s: extending the run from %d to %d generations; the finished ones are "
                     "kept as they are.", workdir, old["loop.generations"],
                     new["loop.generations"])
    # Process 0's view decides: a process refusing alone would leave the others waiting.
    if distributed.agree(bool(diff)) and not overwrite:
      shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in diff[:8]) or (
          "as process 0 reads its config.json")
      raise ConfigError(
          f"workdir {workdir} holds a run with a different config: {shown}. Use another "
          "--workdir, or pass --overwrite to delete that run and start again."
      )
  # Every process has read the old config before process 0 replaces it (atomically).
  multihost_utils.sync_global_devices("prepare_workdir:checked")
  if jax.process_index() == 0:
    if diff:  # the old run's files; the lock stays, held by this run
      for name in os.listdir(workdir):
        if name != workdir_lock.LOCK_NAME:
          target = os.path.join(workdir, name)
          shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    os.makedirs(workdir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
      f.write(config.to_json(indent=2))
    os.replace(path + ".tmp", path)
  multihost_utils.sync_global_devices("prepare_workdir:written")


def _check_extension(workdir: str, old: int, new: int) -> bool:
  """Raising loop.generations continues a run (True); lowering it is refused, since the
  finished generations past the new count would no longer belong to the config."""
  if new < old:
    raise ConfigError(
        f"workdir {workdir} holds a run of loop.generations={old}; lowering it to {new} would "
        "disown its later generations. Read the first generations from its metrics.jsonl, "
        "or use another --workdir.")
  return new > old


def prepare_run(config, workdir: str, overwrite: bool, preflight=None):
  """Validates the config, runs `preflight(config)` (a check that may refuse the run, e.g.
  plan/budget.check), validates it against the data, claims the workdir; returns (dataset, shape of
  one row: (H, W, C) for images, (d,) for vectors)."""
  from collapse_jax.data import load_dataset  # noqa: PLC0415 (configs import this module light)

  validate(config)
  if preflight is not None:  # before the data is read: a refusal should cost seconds
    preflight(config)
  ds = load_dataset(config)
  shape = tuple(ds.images.shape[1:])
  validate(config, shape)
  prepare_workdir(config, workdir, overwrite)
  return ds, shape


LOOP_CHOICES = {
    "paradigm": ("replace", "accumulate", "accumulate_all", "fresh"),
    "selection": LOOP_SELECTIONS,
}
FEATURE_SPACES = ("pixels", "dinov2", "learned")


def validate_features(config) -> None:
  """The feature space and the local encoder weights exist before any training starts."""
  _check(config.features in FEATURE_SPACES, "features",
         f"{config.features!r} is not one of {FEATURE_SPACES}.")
  if config.data.name in VECTOR_DATA:
    for field, value in (("features", config.features != "pixels"),
                         ("features_weights", config.features_weights),
                         ("eval.fid_weights", config.eval.fid_weights)):
      _check(not value, field, f"data.name={config.data.name!r} is vector data: its only "
             "feature space is the raw coordinates; set features='pixels' and no encoder "
             "weights.")
  _check(config.features != "dinov2" or config.features_weights, "features_weights",
         "features='dinov2' needs the DINOv2 weights: set it to a local copy of the HF "
         "facebook/dinov2-small directory or its conversion (scripts/convert_weights.py).")
  for field, path in (("features_weights", config.features_weights),
                      ("eval.fid_weights", config.eval.fid_weights)):
    _check(not path or os.path.exists(path), field,
           f"{path} does not exist; give a local path (nothing is downloaded) or '' to skip.")
  _check(config.eval.dtype in ("float32", "bfloat16"), "eval.dtype",
         f"{config.eval.dtype!r}; use 'float32' or 'bfloat16'.")
  _check(config.eval.batch_size > 0 and config.eval.pr_k >= 1 and config.eval.pr_samples > 1,
         "eval", "batch_size, pr_k and pr_samples must be positive.")


def validate_loop(config) -> None:
  """Checks config.loop before any training; errors name the field and the choices."""
  lc = config.loop
  for field, choices in LOOP_CHOICES.items():
    _check(lc[field] in choices, f"loop.{field}", f"{lc[field]!r} is not one of {choices}.")
  validate_features(config)
  _check(isinstance(lc.generations, int) and lc.generations >= 1, "loop.generations",
         "must be an integer >= 1.")
  _check(lc.n_train >= 0, "loop.n_train", "must be >= 0 (0 = all real images).")
  _check(lc.pool_factor >= 1, "loop.pool_factor",
         f"{lc.pool_factor}: the pool (pool_factor x N) must hold at least N images.")
  _check(0.0 <= lc.fresh_fraction <= 1.0, "loop.fresh_fraction", "lambda must be in [0, 1].")
  _check(lc.tau0 > 0 and 0 < lc.decay < 1, "loop.decay", "need tau0 > 0 and 0 < decay < 1.")
  _check(lc.gen_score_samples > 0, "loop.gen_score_samples", "must be positive.")
  _check(lc.n_heldout >= 0, "loop.n_heldout", "must be >= 0 (0 = no heldout_score).")
