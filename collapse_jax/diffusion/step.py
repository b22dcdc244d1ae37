"""The jitted, sharded train step and sharded state initialisation (pure functions)."""

import functools

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from jax.sharding import Mesh

from collapse_jax import sharding, xla_flags
from collapse_jax.data.pipeline import batch_rows
from collapse_jax.diffusion.loss import eps_loss
from collapse_jax.diffusion.schedule import Schedule
from collapse_jax.diffusion.state import TrainState
from collapse_jax.images import from_uint8


def init_state(
    rng: jax.Array, *, model: nn.Module, tx: optax.GradientTransformation, image_shape, ema: bool
) -> TrainState:
  """Fresh parameters and optimizer state (step 0)."""
  x = jnp.zeros((1, *image_shape), jnp.float32)
  t = jnp.zeros((1,), jnp.int32)
  labels = jnp.zeros((1,), jnp.int32) if model.num_classes else None
  params = model.init(rng, x, t, labels)["params"]
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=tx.init(params),
      ema_params=params if ema else None,
  )


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    rng: jax.Array,
    schedule: Schedule,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    ema_decay: float,
    label_dropout: float,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One AdamW step on the epsilon MSE; labels are dropped to 'null' for CFG training."""
  rng = jax.random.fold_in(rng, state.step)
  loss_rng, dropout_rng, label_rng = jax.random.split(rng, 3)
  labels = batch.get("label") if model.num_classes else None
  if labels is not None and label_dropout > 0:
    drop = jax.random.bernoulli(label_rng, label_dropout, labels.shape)
    labels = jnp.where(drop, model.num_classes, labels)

  def loss_fn(params):
    def eps_fn(x, t):
      return model.apply(
          {"params": params}, x, t, labels, train=True, rngs={"dropout": dropout_rng}
      )

    return eps_loss(eps_fn, schedule, batch["image"], loss_rng)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema_params
  if ema is not None:
    ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
  metrics = {
      "loss": loss,
      "grad_norm": optax.tree.norm(grads),
      "param_norm": optax.tree.norm(params),
  }
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema)
  return new_state, metrics


@functools.cache
def state_shardings(mesh: Mesh, model: nn.Module, tx, image_shape: tuple, ema: bool):
  """NamedShardings of the train state: large params/moments over `fsdp`, rest replicated."""
  init = functools.partial(init_state, model=model, tx=tx, image_shape=image_shape, ema=ema)
  abstract = jax.eval_shape(init, jax.random.key(0))
  return sharding.tree_shardings(abstract, mesh)


@functools.cache
def _jitted_init(mesh, model, tx, image_shape, ema):
  """The state's init, compiled for a program that runs once (xla_flags.once_compiler_options)."""
  init = functools.partial(init_state, model=model, tx=tx, image_shape=image_shape, ema=ema)
  return jax.jit(init, out_shardings=state_shardings(mesh, model, tx, image_shape, ema),
                 compiler_options=xla_flags.once_compiler_options(
                     mesh.devices.flat[0].platform))


def create_state(
    rng: jax.Array, mesh: Mesh, model: nn.Module, tx, image_shape: tuple, ema: bool
) -> TrainState:
  """Initialises the state directly in its sharded layout (no host-side full copy)."""
  return _jitted_init(mesh, model, tx, tuple(image_shape), ema)(rng)


@functools.cache
def compiled_train_step(
    mesh: Mesh, model: nn.Module, tx, image_shape: tuple, ema_decay: float, label_dropout: float
):
  """`train_step` jitted over `mesh` with explicit shardings and the state donated.

  Cached on its static arguments so every generation of a run reuses one compilation.
  """
  shardings = state_shardings(mesh, model, tx, tuple(image_shape), ema_decay > 0)
  rep = sharding.replicated(mesh)
  step = functools.partial(
      train_step, model=model, tx=tx, ema_decay=ema_decay, label_dropout=label_dropout
  )
  return jax.jit(
      sharding.under_mesh(step, mesh),
      in_shardings=(shardings, sharding.batch_sharding(mesh), rep, rep),
      out_shardings=(shardings, rep),
      donate_argnums=0,
  )


def gather_batch(arrays: dict[str, jax.Array], rows: jax.Array) -> dict[str, jax.Array]:
  """Rows `rows` of device-resident arrays as a batch, uint8 images mapped to [-1, 1]."""
  out = {k: jnp.take(v, rows, axis=0) for k, v in arrays.items()}
  return {k: from_uint8(v) if v.dtype == jnp.uint8 else v for k, v in out.items()}


@functools.cache
def compiled_train_steps(
    mesh: Mesh, model: nn.Module, tx, image_shape: tuple, ema_decay: float,
    label_dropout: float, num_examples: int, global_batch: int, k: int,
):
  """`k` train steps in one call: `lax.scan` over the step, each gathering its global batch
  from the device-resident training set at the rows `data.pipeline.batch_rows` gives for
  (data key, the state's step counter), uint8 mapped to [-1, 1] and split over the devices
  like `compiled_train_step`'s batch. Nothing comes from the host but the call; the steps,
  their random numbers and their batches are those of k calls of the single step.

  f(state, arrays, data_key, rng, schedule) -> (state, metrics stacked over k)."""
  shardings = state_shardings(mesh, model, tx, tuple(image_shape), ema_decay > 0)
  rep = sharding.replicated(mesh)
  batch_sh = sharding.batch_sharding(mesh)
  step = functools.partial(
      train_step, model=model, tx=tx, ema_decay=ema_decay, label_dropout=label_dropout
  )

  def steps(state, arrays, data_key, rng, schedule):
    def body(state, _):
      rows = batch_rows(data_key, state.step, num_examples, global_batch)
      batch = jax.lax.with_sharding_constraint(gather_batch(arrays, rows), batch_sh)
      return step(state, batch, rng, schedule)

    return jax.lax.scan(body, state, None, length=k)

  return jax.jit(sharding.under_mesh(steps, mesh), out_shardings=(shardings, rep),
                 donate_argnums=0)
