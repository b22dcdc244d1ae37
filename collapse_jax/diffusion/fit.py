"""The training loop for one model: resumable, sharded, logged, and NaN-checked."""

import functools
import logging
import os
import time

import flax.struct
import jax
import numpy as np
from clu import metrics as clu_metrics
from flax import linen as nn
from jax.sharding import Mesh

from collapse_jax import checkpoint, chips, preemption, sharding
from collapse_jax.data.pipeline import batch_at_step, batch_rows, make_batch_dataset
from collapse_jax.diffusion.schedule import schedule_from_config
from collapse_jax.diffusion.state import TrainState, lr_schedule, make_optimizer
from collapse_jax.diffusion.step import (
  compiled_train_step,
  compiled_train_steps,
  create_state,
  gather_batch,
  init_state,
  state_shardings,
)
from collapse_jax.errors import ConfigError
from collapse_jax.metrics.progress import Progress
from collapse_jax.metrics.writer import MetricWriter

log = logging.getLogger(__name__)
# Steps per call on GPU/TPU with config.train.steps_per_call=0: not measured on a chip yet
# (no accelerator has run this code); large enough that a call outlasts its dispatch.
AUTO_STEPS_PER_CALL = 10


@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output("loss")
  grad_norm: clu_metrics.Average.from_output("grad_norm")
  param_norm: clu_metrics.LastValue.from_output("param_norm")


@functools.cache
def _gather_at(mesh: Mesh, num_examples: int, global_batch: int):
  """Global batch `step` of device-resident arrays, its rows computed on the devices
  (`data.pipeline.batch_rows`), uint8 images mapped to [-1, 1]."""

  def gather(arrays, data_key, step):
    return gather_batch(arrays, batch_rows(data_key, step, num_examples, global_batch))

  return jax.jit(gather, out_shardings=sharding.batch_sharding(mesh))


def batch_for_step(dataset, arrays: dict, step: int, state: TrainState, mesh: Mesh,
                   data_key: jax.Array) -> dict[str, jax.Array]:
  """Global batch number `step` (= `state.step`): device arrays are gathered on the devices
  at rows computed there from the state's own step counter (a loop's training set never
  visits a host, and no index comes from one); host arrays contribute this process's slice
  of the batch."""
  on_device = {k: v for k, v in arrays.items() if isinstance(v, jax.Array)}
  on_host = {k: v for k, v in arrays.items() if k not in on_device}
  batch = {}
  if on_host:
    batch = sharding.shard_batch(batch_at_step(dataset, on_host, step), mesh)
  if on_device:
    gather = _gather_at(mesh, dataset.num_examples, dataset.global_batch)
    batch |= gather(on_device, data_key, state.step)
  return batch


def throughput_model(step_fn, mesh: Mesh, *args) -> tuple[float, int, float]:
  """(FLOPs of one global train step, devices, one device's peak FLOP/s) for the progress
  lines' TFLOP/s and MFU: XLA's count of the lowered step (every product of the global
  computation), the chip's published peak (a measured matmul on CPU)."""
  try:
    cost = step_fn.lower(*args).cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    flops = float((cost or {}).get("flops", 0.0))
  except Exception as e:  # noqa: BLE001 (a backend without a cost model: no MFU, no failure)
    log.info("no FLOP count of the train step (%s): no MFU in the logs", e)
    flops = 0.0
  d = mesh.devices.flat[0]
  local = sum(x.process_index == jax.process_index() for x in mesh.devices.flat)
  peak, _ = chips.device_peak(d.device_kind, d.platform, local)
  return flops, mesh.size, peak


def steps_per_call(tc, mesh: Mesh, arrays: dict) -> int:
  """Train steps per jitted call: config.train.steps_per_call, or with 0 one on XLA:CPU
  (a scan over the step measured slower there) and AUTO_STEPS_PER_CALL on accelerators.
  Host arrays (scripts/train.py's data) take one step per call."""
  k = int(tc.get("steps_per_call", 0))
  if k < 0:
    raise ConfigError(f"config.train.steps_per_call={k}: give a positive count of steps per "
                      "jitted call, or 0 for the platform's default.")
  if not all(isinstance(v, jax.Array) for v in arrays.values()):
    return 1
  if k == 0:
    k = 1 if mesh.devices.flat[0].platform == "cpu" else AUTO_STEPS_PER_CALL
  return k


def _next_boundary(step: int, tc, total: int, profile) -> int:
  """The next step after `step` where a call must end: a log line, a checkpoint, the end,
  or the edge of the profiled steps."""
  edges = [total, (step // tc.log_every + 1) * tc.log_every,
           (step // tc.checkpoint_every + 1) * tc.checkpoint_every]
  edges += [e for e in (profile or ()) if e > step]
  return min(edges)


def _per_step(history: list[dict]) -> list[dict]:
  """Host metrics of single steps and of K-step calls (leading axis K) as one dict per step."""
  out = []
  for m in history:
    if np.ndim(next(iter(m.values()))) == 0:
      out.append(m)
    else:
      out += [{k: v[i] for k, v in m.items()} for i in range(len(next(iter(m.values()))))]
  return out


def _profile_steps(spec: str) -> tuple[int, int] | None:
  """'a:b' -> (a, b): trace steps a+1..b (0-based step a up to b), or None for ''."""
  if not spec:
    return None
  try:
    a, b = (int(x) for x in spec.split(":"))
  except ValueError:
    a = b = -1
  if not 0 <= a < b:
    raise ConfigError(f"config.train.profile_steps={spec!r}: give 'a:b' with 0 <= a < b "
                      "(the steps a+1..b are traced), or '' for none.")
  return a, b


def _check_finite(history: list[dict], first_step: int) -> None:
  losses = np.asarray([np.asarray(m["loss"]) for m in history])
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    step = first_step + int(bad[0])
    raise FloatingPointError(
        f"Training diverged: loss is {losses[bad[0]]} at step {step}. Lower config.optim.lr, "
        "keep config.optim.grad_clip > 0, or use config.model.dtype='float32'."
    )


def fit(
    config,
    arrays: dict[str, np.ndarray],
    workdir: str,
    mesh: Mesh,
    model: nn.Module,
    rng: jax.Array,
    log_prefix: str = "",
    init_from: str | None = None,
) -> TrainState:
  """Trains `model` on `arrays` ({'image', ['label']}) for config.train.num_steps steps.

  Arrays are host arrays (every process holds them whole) or global device arrays; uint8
  device images are mapped to [-1, 1] per batch.

  Checkpoints to `workdir/checkpoints` and resumes from the newest one, replaying the
  same batches and random numbers, so a killed run ends exactly where an unkilled one would.
  On preemption (`collapse_jax.preemption`) it checkpoints the step just finished and raises
  `Preempted`.
  `init_from` (another fit's workdir) starts from its final parameters (and EMA) with a
  fresh optimizer: fine-tuning instead of training from scratch.
  """
  tc = config.train
  image_shape = tuple(arrays["image"].shape[1:])
  total = int(tc.num_steps)
  tx = make_optimizer(config.optim, total)
  ema = tc.ema_decay > 0
  schedule = schedule_from_config(config)
  step_fn = compiled_train_step(mesh, model, tx, image_shape, float(tc.ema_decay),
                                float(tc.label_dropout))
  init_rng, step_rng = jax.random.split(rng)

  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"))
  shardings = state_shardings(mesh, model, tx, image_shape, ema)
  abstract = jax.eval_shape(
      lambda r: init_state(r, model=model, tx=tx, image_shape=image_shape, ema=ema), init_rng
  )
  target = checkpoint.abstract_like(abstract, shardings)
  restored = checkpoint.restore_latest(manager, target)
  if restored is None:
    start, state = 0, create_state(init_rng, mesh, model, tx, image_shape, ema)
    if init_from is not None:
      previous = checkpoint.restore_latest(
          checkpoint.make_manager(os.path.join(init_from, "checkpoints")), target)
      if previous is None:
        raise FileNotFoundError(f"fine-tuning needs a checkpoint in {init_from}/checkpoints.")
      state = state.replace(params=previous[1].params, ema_params=previous[1].ema_params)
      log.info("%sfine-tuning from %s (step %d)", log_prefix, init_from, previous[0])
  else:
    start, state, meta = restored
    log.info("%sresuming from checkpoint at step %d", log_prefix, start)
  # Per-step metrics since the last logged step: saved with each checkpoint, so a resumed
  # run logs the same averages as an uninterrupted one.
  pending = [] if restored is None else meta.get("pending", [])

  dataset = make_batch_dataset(arrays["image"].shape[0], tc.batch_size, config.seed)
  writer = MetricWriter(workdir, "train", resume_step=start)
  profile = _profile_steps(tc.get("profile_steps", ""))
  progress, tracing = None, False
  lr = lr_schedule(config.optim.lr, config.optim.warmup_steps, total)
  history = [{k: np.float32(v) for k, v in m.items()} for m in pending]
  first = start - len(history)
  k = steps_per_call(tc, mesh, arrays)
  data_key = jax.random.wrap_key_data(sharding.put_replicated(
      np.asarray(jax.random.key_data(jax.random.key(config.seed))), mesh))
  step = start
  while step < total:
    n = min(k, _next_boundary(step, tc, total, profile) - step)
    if profile and step == profile[0]:
      jax.profiler.start_trace(os.path.join(workdir, "profile"))
      tracing = True
    if n == 1 or step == start:  # the first step's batch also gives the step's FLOPs
      batch = batch_for_step(dataset, arrays, step, state, mesh, data_key)
    if step == start:
      progress = Progress(total, start, tc.batch_size, log_prefix, *throughput_model(
          step_fn, mesh, state, batch, step_rng, schedule))
      log.info("%scompiling the train step (or reusing an earlier generation's)", log_prefix)
      t0 = time.perf_counter()
    if n == 1:
      state, step_metrics = step_fn(state, batch, step_rng, schedule)
    else:  # n steps in one call: one dispatch, the batches computed on the devices
      steps_fn = compiled_train_steps(mesh, model, tx, image_shape, float(tc.ema_decay),
                                      float(tc.label_dropout), dataset.num_examples,
                                      dataset.global_batch, n)
      state, step_metrics = steps_fn(state, arrays, data_key, step_rng, schedule)
    if step == start:
      jax.block_until_ready(step_metrics)
      log.info("%sfirst train call (%d step%s) in %.1fs (compiling it included, unless an "
               "earlier generation compiled the same shapes)", log_prefix, n, "s" * (n > 1),
               time.perf_counter() - t0)
      progress.report(start + n)  # the images/s of the first report leave compilation out
    history.append(step_metrics)
    done = step = step + n
    if tracing and (done == profile[1] or done == total):
      jax.block_until_ready(step_metrics)
      jax.profiler.stop_trace()
      tracing = False
      log.info("%sprofile of steps %d-%d in %s (TensorBoard's profile plugin, or Perfetto)",
               log_prefix, profile[0] + 1, done, os.path.join(workdir, "profile"))
    if done % tc.log_every == 0 or done == total:
      history = _per_step(jax.device_get(history))
      _check_finite(history, first)
      stacked = {k: np.stack([m[k] for m in history]) for k in history[0]}
      scalars = TrainMetrics.single_from_model_output(**stacked).compute()
      scalars = {k: float(v) for k, v in scalars.items()}
      stats = progress.report(done)
      scalars |= stats | {"lr": float(lr(done))}
      writer.write_scalars(done, scalars)
      log.info(progress.line(done, stats, loss=scalars["loss"]))
      history, first = [], done
    stop = preemption.reached()  # on every process, after every call
    if stop or done % tc.checkpoint_every == 0 or done == total:
      history = _per_step(jax.device_get(history))
      pending = [{k: float(v) for k, v in m.items()} for m in history]
      checkpoint.save(manager, done, state, {"step": done, "pending": pending})
    if stop and done < total:
      manager.wait_until_finished()
      writer.close()
      raise preemption.Preempted(f"at training step {done}/{total}")
  manager.wait_until_finished()
  writer.close()
  return state
