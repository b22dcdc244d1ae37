"""Every jitted program of one generation of the loop, as the loop builds it, with abstract
inputs (`jax.ShapeDtypeStruct`s carrying the loop's shardings): nothing is allocated, and
neither data nor encoder weights are read, only their shapes.

Each `Program` says how often a generation calls it. A program built around a `lax` loop
also carries its `unit`, the loop body jitted alone, and the body's trip count: XLA's cost
models count a while loop's body once, so FLOPs, bytes and collectives per call are the
unit's times `trips`.
"""

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from collapse_jax import sharding
from collapse_jax.diffusion import generate
from collapse_jax.diffusion.schedule import schedule_from_config
from collapse_jax.diffusion.state import make_optimizer
from collapse_jax.diffusion.step import (
    compiled_train_step,
    compiled_train_steps,
    init_state,
    state_shardings,
)
from collapse_jax.encoders import dinov2, extract, inception, learned
from collapse_jax.errors import ConfigError
from collapse_jax.kernels import excess, knn, ring, selection
from collapse_jax.metrics.collapse_time import GRID
from collapse_jax.models.unet import unet_from_config

# (H, W, C) and classes of the datasets by name; images / ffhq take config.data.resolution.
DATA_SHAPES = {"digits": ((8, 8, 1), 10), "mnist": ((32, 32, 1), 10),
               "cifar10": ((32, 32, 3), 10)}
KNN_BLOCK = 1024  # kernels.entropy's default block, as the loop calls it


@dataclasses.dataclass(frozen=True)
class Program:
  """A jitted function, its abstract arguments and its calls per generation."""

  name: str
  fn: Any
  args: tuple
  calls: float
  unit: "Program | None" = None
  trips: float = 1.0
  used: bool = True
  note: str = ""


def data_shape(config) -> tuple[tuple[int, int, int], int]:
  """(H, W, C) and the number of classes of config.data, from its name alone."""
  d = config.data
  if d.name in DATA_SHAPES:
    shape, classes = DATA_SHAPES[d.name]
    if d.resolution:
      shape = (d.resolution, d.resolution, shape[2])
    return shape, classes
  if d.name in ("ffhq", "images"):
    if not d.resolution:
      raise ConfigError(f"config.data.resolution: a plan for data.name={d.name!r} needs the "
                        "image side (e.g. --config.data.resolution=32).")
    return (d.resolution, d.resolution, 3), 0
  raise ConfigError(f"config.data.name={d.name!r}: a plan covers image data "
                    f"({sorted(DATA_SHAPES) + ['ffhq', 'images']}).")


def _abstract(tree, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      tree, shardings)


def _like(x, mesh):
  """An abstract array like `x`, replicated over `mesh`."""
  return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, P()))


def _key(mesh):
  return _like(jax.eval_shape(lambda: jax.random.key(0)), mesh)


def sizes(config) -> dict[str, int]:
  """N, the pool, and the sampler's chunk (as `generate` rounds it) of config.loop."""
  n = int(config.loop.n_train) or 50_000
  return {"n": n, "pool": n * int(config.loop.pool_factor)}


def chunk_size(config, devices: int, num_images: int) -> int:
  """The sampler's chunk, as `diffusion.generate` makes it for `devices` devices."""
  return generate.chunk_size(int(config.sample.batch_size), devices, num_images)


def _training(config, mesh: Mesh, cpu_kernels: bool):
  """(model, optimizer, image shape, abstract train state, abstract schedule) of config's
  UNet, with the shardings the loop gives them on `mesh`."""
  shape, classes = data_shape(config)
  model = unet_from_config(config.model, shape, classes)
  if not cpu_kernels:
    model = model.clone(cpu_kernels=False)
  tx = make_optimizer(config.optim, int(config.train.num_steps))
  ema = float(config.train.ema_decay) > 0
  init = functools.partial(init_state, model=model, tx=tx, image_shape=shape, ema=ema)
  state = _abstract(jax.eval_shape(init, jax.random.key(0)),
                    state_shardings(mesh, model, tx, shape, ema))
  schedule = jax.tree.map(lambda x: _like(x, mesh),
                          jax.eval_shape(lambda: schedule_from_config(config)))
  return model, tx, shape, state, schedule


def diffusion_programs(config, mesh: Mesh, cpu_kernels: bool = True,
                       round_to: int = 0) -> list[Program]:
  """The train step and the sampler (its whole loop, and one denoising step)."""
  model, tx, shape, state, schedule = _training(config, mesh, cpu_kernels)
  tc, sc = config.train, config.sample
  ema = float(tc.ema_decay) > 0
  batch_sh = sharding.batch_sharding(mesh)
  b = int(tc.batch_size)
  if b % mesh.size:
    raise ConfigError(f"config.train.batch_size={b} does not divide over the {mesh.size} "
                      "devices of the mesh.")
  batch = {"image": jax.ShapeDtypeStruct((b, *shape), jnp.float32, sharding=batch_sh)}
  labels = None
  if model.num_classes:
    batch["label"] = jax.ShapeDtypeStruct((b,), jnp.int32, sharding=batch_sh)
  step = compiled_train_step(mesh, model, tx, shape, float(tc.ema_decay),
                             float(tc.label_dropout))
  train = Program("train step", step, (state, batch, _key(mesh), schedule),
                  calls=int(tc.num_steps))

  pool = sizes(config)["pool"]
  chunk = chunk_size(config, round_to or mesh.size, pool)
  if model.num_classes:
    labels = jax.ShapeDtypeStruct((chunk,), jnp.int32, sharding=batch_sh)
  trips = int(config.diffusion.num_steps) if sc.method == "ddpm" else int(sc.num_steps)
  sampler_args = (int(sc.num_steps), float(sc.eta), float(sc.guidance_scale), bool(sc.clip_x0))
  one = generate.compiled_denoise_step(mesh, model, sc.method, *sampler_args)
  x = jax.ShapeDtypeStruct((chunk, *shape), jnp.float32, sharding=batch_sh)
  params = state.ema_params if ema else state.params
  index = _like(jax.ShapeDtypeStruct((), jnp.int32), mesh)
  step_prog = Program("sampler step", one, (params, x, index, _key(mesh), labels, schedule),
                      calls=trips * math.ceil(pool / chunk))
  whole = generate.compiled_sampler(mesh, model, (chunk, *shape), sc.method, *sampler_args)
  sampler = Program(f"sampler ({sc.method}, {trips} steps)", whole,
                    (params, _key(mesh), labels, schedule), calls=math.ceil(pool / chunk),
                    unit=step_prog, trips=trips, note=f"chunks of {chunk} images")
  return [train, sampler]


def train_loop_program(config, mesh: Mesh, k: int, cpu_kernels: bool = False) -> Program:
  """`k` train steps per call (diffusion/step.py:compiled_train_steps) on the loop's
  device-resident uint8 training set of N rows: what fit runs with train.steps_per_call=k."""
  model, tx, shape, state, schedule = _training(config, mesh, cpu_kernels)
  tc = config.train
  n, b = sizes(config)["n"], int(tc.batch_size)
  rows = sharding.rows_sharding(mesh, n)
  arrays = {"image": jax.ShapeDtypeStruct((n, *shape), jnp.uint8, sharding=rows)}
  if model.num_classes:
    arrays["label"] = jax.ShapeDtypeStruct((n,), jnp.int32, sharding=rows)
  fn = compiled_train_steps(mesh, model, tx, shape, float(tc.ema_decay),
                            float(tc.label_dropout), n, b, k)
  return Program(f"train steps ({k} per call)", fn,
                 (state, arrays, _key(mesh), _key(mesh), schedule), calls=int(tc.num_steps) / k)


def _encoder(kind: str, dtype, cpu_kernels: bool, config) -> extract.Encoder:
  """An Encoder with abstract params (the shapes of the published weights, or of the learned
  space's CNN for config.data)."""
  if kind == "learned":  # always float32: its products ask for full precision (learned.py)
    shape, classes = data_shape(config)
    model = learned.SmallCNN(max(classes, 2))
    x = jnp.zeros((1, *shape[:2], 3))
    enc = extract.Encoder("learned", model, None, learned._preprocess)
  elif kind == "dinov2":
    model = dinov2.Dinov2(dinov2.Dinov2Config(), dtype=dtype, cpu_kernels=cpu_kernels)
    x = jnp.zeros((1, 224, 224, 3))
    enc = extract.Encoder("dinov2", model, None, dinov2.preprocess, pick=lambda out: out[0])
  else:
    model = inception.FIDInception(dtype)
    x = jnp.zeros((1, 299, 299, 3))
    enc = extract.Encoder("inception", model, None, lambda x: x.astype(jnp.float32) / 255.0)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), x)["params"])
  return dataclasses.replace(enc, params=params)


def encoders_used(config) -> dict[str, int]:
  """{encoder: images it embeds per generation} for the encoders the config uses (DINOv2 and
  the learned space's CNN on a labelled dataset: training set, pool and next set; Inception:
  the pool, for FID). The CNN's own training, once per run, is not planned."""
  s = sizes(config)
  used = {}
  if config.features == "dinov2" or config.features_weights:
    used["dinov2"] = 2 * s["n"] + s["pool"]
  if (config.features == "learned" or config.eval.learned) and data_shape(config)[1] > 1:
    used["learned"] = 2 * s["n"] + s["pool"]
  if config.eval.fid_weights:
    used["inception"] = s["pool"]
  return used


def encoder_programs(config, mesh: Mesh, cpu_kernels: bool = True) -> list[Program]:
  shape, _ = data_shape(config)
  dtype = jnp.bfloat16 if config.eval.dtype == "bfloat16" else jnp.float32
  out = []
  pool = sizes(config)["pool"]
  for kind, images in encoders_used(config).items():
    enc = _encoder(kind, dtype, cpu_kernels, config)
    params = jax.tree.map(lambda p: _like(p, mesh), enc.params)
    batch = int(config.eval.batch_size)
    local = max(1, -(-batch // mesh.size))
    fn = extract._compiled(enc, mesh, pool, local)
    x = jax.ShapeDtypeStruct((pool, *shape), jnp.uint8, sharding=sharding.rows_sharding(mesh,
                                                                                        pool))
    gbatch = local * mesh.size
    unit_fn = jax.jit(lambda p, x, enc=enc: extract._features(p, extract.to_rgb(x), encoder=enc),
                      out_shardings=sharding.batch_sharding(mesh))
    xb = jax.ShapeDtypeStruct((gbatch, *shape), jnp.uint8,
                              sharding=sharding.batch_sharding(mesh))
    unit = Program(f"{kind} batch", unit_fn, (params, xb), calls=0)
    out.append(Program(f"{kind} features (pool)", fn, (params, x), calls=images / pool,
                       unit=unit, trips=math.ceil(pool / gbatch),
                       note=f"{images} images per generation, {gbatch} per batch"))
  return out


def feature_dims(config) -> dict[str, int]:
  shape, _ = data_shape(config)
  dims = {"pixels": math.prod(shape)}
  used = encoders_used(config)
  if "dinov2" in used:
    dims["dinov2"] = dinov2.Dinov2Config().hidden_size
  if "learned" in used:
    dims["learned"] = learned.FEATURES
  return dims


def _rows(n, d, mesh, dtype):
  """An abstract (n, d) set of rows split over every device of `mesh`, as the loop holds
  its pools and training sets (padded to a multiple of the device count by the kernels)."""
  n = -(-n // mesh.size) * mesh.size
  axes = tuple(mesh.axis_names)
  return jax.ShapeDtypeStruct((n, d), dtype, sharding=NamedSharding(mesh, P(axes)))


def _entropy_program(name, n, d, dtype, mesh, calls):
  """The loop's entropy search on an abstract set: the symmetric search on one device,
  the ring (`kernels.ring`) over every device of a larger mesh."""
  x = _rows(n, d, mesh, dtype)
  b = min(KNN_BLOCK, n)
  tile = jax.jit(functools.partial(knn.knn, k=1, block_size=b))
  xt = jax.ShapeDtypeStruct((b, d), dtype)
  if mesh.size == 1:  # the loop's single-device path: the symmetric search
    fn = jax.jit(lambda x: knn.knn_self(x, 1, block_size=b)[0][:, 0])
    nb = math.ceil(n / b)
    tiles = nb * (nb + 1) / 2 if d > knn.DIRECT_MAX_DIM else nb * nb
  else:
    fn = jax.jit(lambda x: ring._ring_knn(x, x, k=1, block_size=b, mesh=mesh,
                                          exclude_self=True, n_base=n)[0][:, 0])
    local = x.shape[0] // mesh.size
    tiles = mesh.size * math.ceil(local / b) ** 2 * mesh.size
  unit = Program("knn tile", tile, (xt, xt), calls=0)
  return Program(name, fn, (x,), calls=calls, unit=unit, trips=tiles,
                 note=f"{n} x {d} {jnp.dtype(dtype).name}, tiles of {b}")


EXCESS_BLOCK = 512  # kernels.excess's default block, as metrics.collapse_time calls it


def _collapse_time_program(space, n, m, d, dtype, mesh):
  """A pass of the collapse time's kernel (`kernels.excess`) on an abstract training set
  and m queries at GRID times; two passes per generation and space."""
  x, q = _rows(n, d, mesh, dtype), _rows(m, d, mesh, dtype)
  ts = _like(jax.ShapeDtypeStruct((GRID,), jnp.float32), mesh)
  b = min(EXCESS_BLOCK, n, m)
  m_ = None if mesh.size == 1 else mesh
  fn = jax.jit(lambda q, x, ts, key: excess._per_query(
      q, x, ts, key, block_size=b, scale=1.0, shift=0.0, exclude_self=False, n_base=n,
      mesh=m_))
  qt, xt = jax.ShapeDtypeStruct((b, d), dtype), jax.ShapeDtypeStruct((b, d), dtype)
  tile = jax.jit(lambda q, x, ts, key: excess._per_query(
      q, x, ts, key, block_size=b, scale=1.0, shift=0.0, exclude_self=False, n_base=b,
      mesh=None))
  key = jax.eval_shape(lambda: jax.random.key(0))
  unit = Program("excess tile", tile, (qt, xt, jax.ShapeDtypeStruct((GRID,), jnp.float32),
                                       key), calls=0)
  tiles = math.ceil(q.shape[0] / b) * math.ceil(x.shape[0] / b)
  return Program(f"collapse time {space}", fn, (q, x, ts, _key(mesh)), calls=2, unit=unit,
                 trips=tiles, note=f"{m} queries x {n} rows x {d} {jnp.dtype(dtype).name}, "
                 f"{GRID} times")


def _selection_program(kind, n, d, dtype, n_select, mesh, used):
  """The loop's selection kernel (`kernels.selection._run`, what greedy_select and
  threshold_decay_select call after their host-side checks) on an abstract pool."""
  x = _rows(n, d, mesh, dtype)
  m = None if mesh.size == 1 else mesh
  start = _like(jax.ShapeDtypeStruct((), jnp.int32), mesh)
  if kind == "greedy":
    def build(k):
      return jax.jit(lambda x, s: selection._run(selection._greedy_local, x, m, (), (s,),
                                                 n=n, n_select=k))
    args = (x, start)
  else:
    def build(k):
      return jax.jit(lambda x, rank, s, tau: selection._run(
          selection._threshold_local, x, m, (rank,), (s, tau), n=n, n_select=k,
          decay=0.95, every_pass=False))
    rank = jax.ShapeDtypeStruct((x.shape[0],), jnp.int32, sharding=x.sharding)
    args = (x, rank, start, _like(jax.ShapeDtypeStruct((), jnp.float32), mesh))
  # The unit selects 2 points: its cost (the first point's pass plus one loop body) is two
  # passes over the pool; `n_select / 2` of them cost the whole selection.
  unit = Program(f"{kind}: 2 picks", build(2), args, calls=0)
  note = f"{n_select} of {n} points, d = {d} {jnp.dtype(dtype).name}"
  if kind == "threshold":
    note += "; at least one pass per pick (passes are data-dependent: a lower bound)"
  return Program(f"{kind} selection", build(n_select), args, calls=1 if used else 0,
                 unit=unit, trips=n_select / 2, used=used, note=note)


def feature_dtype(space: str):
  """The dtype of the loop's rows in `space`: uint8 pixels (`loop.embed.pixels`), float32
  encoder features (`encoders.extract`)."""
  return jnp.uint8 if space == "pixels" else jnp.float32


def kernel_programs(config, mesh: Mesh) -> list[Program]:
  """kNN entropy on the pool and the training set (and the selected set) and the training
  set's collapse time, per feature space; greedy and threshold selection on the pool in
  the selection space."""
  s = sizes(config)
  out = []
  for space, d in feature_dims(config).items():
    dtype = feature_dtype(space)
    out.append(_entropy_program(f"entropy {space} (pool)", s["pool"], d, dtype, mesh, calls=1))
    out.append(_entropy_program(f"entropy {space} (train)", s["n"], d, dtype, mesh, calls=2))
    out.append(_collapse_time_program(space, s["n"], min(s["n"], config.loop.gen_score_samples),
                                      d, dtype, mesh))
  space = config.features if config.features in ("dinov2", "learned") else "pixels"
  d, dtype = feature_dims(config)[space], feature_dtype(space)
  chosen = config.loop.selection
  for kind in ("greedy", "threshold"):
    out.append(_selection_program(kind, s["pool"], d, dtype, s["n"], mesh,
                                  used=chosen == kind))
  return out


def generation_programs(config, mesh: Mesh, cpu_kernels: bool = True,
                        round_to: int = 0) -> list[Program]:
  """All of one generation's programs for `config` on `mesh`. `cpu_kernels=False` builds
  the models with the other platforms' kernels, and `round_to` rounds the sampler's chunk
  for that many devices (a CPU cost model of a TPU/GPU run: same global shapes)."""
  if config.model.kind != "unet":
    raise ConfigError(f"config.model.kind={config.model.kind!r}: a plan covers the UNet "
                      "diffusion model.")
  return (diffusion_programs(config, mesh, cpu_kernels, round_to)
          + encoder_programs(config, mesh, cpu_kernels) + kernel_programs(config, mesh))
