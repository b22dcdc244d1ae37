"""The paper's data selection (Algorithms 1 and 2) and baselines, as lax loops.

Each returns the selected indices (int32, in selection order). Distances are Euclidean in
the given feature space. Both algorithms keep a running min-distance vector (squared
distance from every pool point to the selected set), updated with one matrix-vector product
per selected point (||x||^2 + ||c||^2 - 2 x.c, full float32 on every backend, clamped at
0): one pass over the pool per pick, the memory-bandwidth bound, and O(n) memory.

With `mesh`, the pool is split over every device (all mesh axes, so no device holds it
whole): each device updates its own min-distances, proposes its best candidate, and one
small all-gather picks the global one (ties go to the smallest index, as on one device),
so the indices equal the single-device ones. uint8 pixel pools stay uint8 (products in
bfloat16, exact, with float32 accumulation).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from collapse_jax import precision
from collapse_jax.kernels.entropy import check_features

_NEG = -jnp.inf


def _check(features, n_select: int) -> int:
  check_features(features)
  n = np.shape(features)[0]
  if not 1 <= n_select <= n:
    raise ValueError(f"n_select={n_select} must be in [1, {n}] (the pool has {n} points).")
  return n




class _Pool:
  """Helpers over this device's rows of the pool (the whole pool without a mesh)."""

  def __init__(self, x_local, n, axis):
    self.x, self.axis = x_local, axis
    xf = x_local.astype(jnp.float32)
    self.norms = jnp.sum(xf * xf, axis=1)
    n_local = x_local.shape[0]
    offset = 0 if axis is None else lax.axis_index(axis) * n_local
    self.ids = offset + jnp.arange(n_local, dtype=jnp.int32)
    self.valid = self.ids < n
    self.offset = offset

  def best(self, score):
    """(max score, smallest global index attaining it) over all devices."""
    i = jnp.argmax(score)
    v, g = score[i], self.ids[i]
    if self.axis is None:
      return v, g
    vs, gs = lax.all_gather(v, self.axis), lax.all_gather(g, self.axis)
    best = jnp.max(vs)
    return best, jnp.min(jnp.where(vs == best, gs, jnp.iinfo(jnp.int32).max))

  def row(self, g):
    """Features of global point g, fetched from the device that owns it."""
    local = g - self.offset
    inside = (local >= 0) & (local < self.x.shape[0])
    r = jnp.where(inside, self.x[jnp.clip(local, 0, self.x.shape[0] - 1)], 0)
    if self.axis is None:
      return r
    if jnp.issubdtype(r.dtype, jnp.integer):  # uint8 rows: summed as int32 everywhere
      return lax.psum(r.astype(jnp.int32), self.axis).astype(r.dtype)
    return lax.psum(r, self.axis)

  def sq_dist_to(self, g):
    """Squared distances from this device's points to global point g."""
    c = self.row(g)
    cf = c.astype(jnp.float32)
    dot = precision.dot_f32(self.x, c, ((1,), (0,)))
    return jnp.maximum(self.norms + jnp.sum(cf * cf) - 2.0 * dot, 0.0)


def _greedy_local(x_local, start, *, n, n_select, axis):
  pool = _Pool(x_local, n, axis)
  selected = jnp.zeros((n_select,), jnp.int32).at[0].set(start)
  # A chosen point's min-distance is -inf, not 0, so it is never chosen again: once only
  # copies of chosen rows are left (all at distance 0) the next copy is taken, as the
  # authors' mask does. Padding rows are -inf from the start.
  mind = jnp.where(pool.valid & (pool.ids != start), pool.sq_dist_to(start), _NEG)

  def body(t, carry):
    selected, mind = carry
    _, g = pool.best(mind)
    mind = jnp.where(pool.ids == g, _NEG, jnp.minimum(mind, pool.sq_dist_to(g)))
    return selected.at[t].set(g), mind

  selected, _ = lax.fori_loop(1, n_select, body, (selected, mind))
  return selected


def greedy_select(
    features, n_select: int, *, start: int | None = None, key: jax.Array | None = None,
    mesh: Mesh | None = None,
) -> jax.Array:
  """Algorithm 1: farthest-point (k-center) greedy from `start` (or a point drawn by `key`).

  Each step adds argmax_x min_{y in D} ||x - y||: the point that most raises the k=1 entropy.
  """
  n = _check(features, n_select)
  if start is None:
    key = jax.random.key(0) if key is None else key
    start = int(jax.random.randint(key, (), 0, n))
  if not 0 <= start < n:
    raise ValueError(f"start={start} is outside the pool [0, {n}).")
  return _run(_greedy_local, jnp.asarray(features), mesh, (), (jnp.int32(start),),
              n=n, n_select=n_select)


def _threshold_local(x_local, rank_local, start, tau0, *, n, n_select, decay, every_pass, axis):
  pool = _Pool(x_local, n, axis)
  big = jnp.iinfo(jnp.int32).max
  selected = jnp.zeros((n_select,), jnp.int32).at[0].set(start)
  taus = jnp.zeros((n_select,), jnp.float32)
  mind = jnp.where(pool.valid, pool.sq_dist_to(start), _NEG)
  # mind (squared) = -inf marks padding; chosen points get mind 0 and are tracked by `taken`.
  taken = pool.ids == start

  def add(state, g, tau, pos):
    count, selected, taus, mind, taken, _, added = state
    mind = jnp.minimum(mind, pool.sq_dist_to(g))
    return (count + 1, selected.at[count].set(g), taus.at[count].set(tau), mind,
            taken | (pool.ids == g), pos + 1, added + 1)

  def body(carry):
    state, tau = carry
    count, selected, taus, mind, taken, pos, added = state
    # The next point in (shuffled) pass order, at or after `pos`, farther than tau.
    eligible = pool.valid & ~taken & (mind > tau * tau) & (rank_local >= pos)
    neg_rank, g = pool.best(jnp.where(eligible, -rank_local, -big))
    found = neg_rank > -big

    def on_found(_):
      return add(state, g, tau, -neg_rank), tau

    def on_pass_end(_):
      # A pass ended. Decay (paper: only if it added nothing; authors' code: always), then
      # fast-forward over passes that could add nothing, exactly as repeated decays would.
      t = jnp.where(every_pass | (added == 0), tau * decay, tau)
      best_left, _ = pool.best(jnp.where(pool.valid & ~taken, mind, _NEG))
      t = lax.while_loop(lambda t: (t * t >= best_left) & (best_left > 0),
                         lambda t: t * decay, t)
      restart = (count, selected, taus, mind, taken, jnp.int32(0), jnp.int32(0))
      return restart, t

    return lax.cond(found, on_found, on_pass_end, None)

  def cond(carry):
    state, _ = carry
    count, _, _, mind, taken, _, _ = state
    left, _ = pool.best(jnp.where(pool.valid & ~taken, mind, _NEG))
    return (count < n_select) & (left > 0)

  init = ((jnp.int32(1), selected, taus, mind, taken, jnp.int32(0), jnp.int32(0)), tau0)
  (count, selected, taus, mind, taken, _, _), tau = lax.while_loop(cond, body, init)

  # Only exact duplicates of selected points are left: fill up in pass order.
  def fill(t, carry):
    selected, taken = carry
    _, g = pool.best(jnp.where(pool.valid & ~taken, -rank_local, -big))
    keep = t >= count
    selected = jnp.where(keep, selected.at[t].set(g), selected)
    return selected, jnp.where(keep, taken | (pool.ids == g), taken)

  selected, _ = lax.fori_loop(1, n_select, fill, (selected, taken))
  taus = jnp.where(jnp.arange(n_select) < count, taus, 0.0)
  return selected, taus


def threshold_decay_select(
    features, n_select: int, tau0: float, decay: float, *, key: jax.Array | None = None,
    shuffle: bool = True, decay_every_pass: bool = False, return_thresholds: bool = False,
    mesh: Mesh | None = None,
):
  """Algorithm 2: passes over the pool adding points farther than tau from the selected set.

  D starts with one random point. After a pass that adds nothing tau <- decay * tau (the
  paper's rule); `decay_every_pass=True` decays after every pass (the authors' code).
  `shuffle` visits the pool in a random order (the authors' code). If only exact duplicates
  of selected points remain, they fill the set in pass order. With `return_thresholds`,
  also returns the tau in force when each point was added (0 for the first/filled ones).
  """
  n = _check(features, n_select)
  if tau0 <= 0 or not 0 < decay < 1:
    raise ValueError(f"need tau0 > 0 and 0 < decay < 1, got tau0={tau0}, decay={decay}.")
  key = jax.random.key(0) if key is None else key
  order_key, start_key = jax.random.split(key)
  order = jax.random.permutation(order_key, n) if shuffle else jnp.arange(n)
  rank = jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
  start = order[0] if shuffle else jax.random.randint(start_key, (), 0, n)
  selected, taus = _run(
      _threshold_local, jnp.asarray(features), mesh, (rank,),
      (start.astype(jnp.int32), jnp.float32(tau0)), n=n, n_select=n_select,
      decay=float(decay), every_pass=bool(decay_every_pass),
  )
  return (selected, taus) if return_thresholds else selected


@functools.partial(jax.jit, static_argnums=(0, 2),
                   static_argnames=("n", "n_select", "decay", "every_pass"))
def _run(fn, features, mesh, pool_args=(), scalars=(), **kw):
  """Runs a selection body on one device, or per shard of the pool under shard_map, the
  pool split over every device of the mesh (all its axes).

  `pool_args` are per-point arrays split like the pool; `scalars` are replicated.
  """
  if mesh is None or mesh.size == 1:
    return fn(features, *pool_args, *scalars, axis=None, **kw)
  axes = tuple(mesh.axis_names)
  pad = -features.shape[0] % mesh.size
  features = jnp.pad(features, ((0, pad), (0, 0)))
  pool_args = tuple(jnp.pad(a, (0, pad)) for a in pool_args)
  return jax.shard_map(
      functools.partial(fn, axis=axes, **kw),
      mesh=mesh,
      in_specs=(P(axes),) * (1 + len(pool_args)) + (P(),) * len(scalars),
      out_specs=P(),
      check_vma=False,
  )(features, *pool_args, *scalars)
