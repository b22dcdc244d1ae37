"""Exact blockwise k-nearest-neighbour search on the matrix units.

Squared distances come from ||q||^2 + ||x||^2 - 2 q.x (a matmul at the precision its inputs
need, `collapse_jax.precision`: full float32 on every backend), are clamped at 0 against
cancellation, and are reduced per tile with a
running top-k merge, so memory is O(block^2 + m k), never m x n. `knn_self` searches a set
against itself with the self-match excluded and visits only the upper-triangular tiles,
using each tile for both its row and column block (half the matmul work).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from collapse_jax import precision

_BIG = np.float32(np.inf)  # not a jax array: importing must not start the backend


def _check(x: jax.Array, name: str, rank: int = 2) -> None:
  if x.ndim != rank:
    raise ValueError(f"{name} must have rank {rank} (points x features), got shape {x.shape}.")


def _pad_rows(x: jax.Array, multiple: int) -> jax.Array:
  pad = -x.shape[0] % multiple
  return jnp.pad(x, ((0, pad), (0, 0))) if pad else x


# Up to this many features, tiles are computed by direct differences: in low dimension
# neighbours are so close that the matmul expansion's cancellation would mis-rank them.
DIRECT_MAX_DIM = 16


def sq_dists(q: jax.Array, x: jax.Array) -> jax.Array:
  """(m, n) squared Euclidean distances, float32, clamped at 0."""
  qf, xf = q.astype(jnp.float32), x.astype(jnp.float32)
  if q.shape[1] <= DIRECT_MAX_DIM:
    return jnp.sum(jnp.square(qf[:, None, :] - xf[None, :, :]), axis=-1)
  dot = precision.dot_f32(q, x, ((1,), (1,)))
  q2 = jnp.sum(qf * qf, axis=1)
  x2 = jnp.sum(xf * xf, axis=1)
  return jnp.maximum(q2[:, None] + x2[None, :] - 2.0 * dot, 0.0)


def _argmin(t: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
  """(min, first index of the min) along `axis`.

  Two plain min-reductions (vectorised and fused with the producers on every backend)
  instead of `jnp.argmin`'s variadic reduction, which is ~2x slower per tile on XLA:CPU.
  """
  m = jnp.min(t, axis=axis)
  iota = lax.broadcasted_iota(jnp.int32, t.shape, axis)
  hit = t == jnp.expand_dims(m, axis)
  return m, jnp.min(jnp.where(hit, iota, jnp.iinfo(jnp.int32).max), axis=axis)


def _smallest_k(d2: jax.Array, k: int, approx: bool) -> tuple[jax.Array, jax.Array]:
  """Per row, the k smallest values (ascending) and their column indices."""
  if approx:
    vals, idx = lax.approx_min_k(d2, k, recall_target=0.95)
    return vals, idx.astype(jnp.int32)
  return _reduce_k(d2, 1, k)


def _merge(best_d, best_i, new_d, new_i, k):
  """Keeps the k smallest of two (rows, k) candidate lists."""
  d = jnp.concatenate([best_d, new_d], axis=1)
  i = jnp.concatenate([best_i, new_i], axis=1)
  if k == 1:
    pick = jnp.argmin(d, axis=1)[:, None]
  else:
    pick = lax.top_k(-d, k)[1]
  return jnp.take_along_axis(d, pick, 1), jnp.take_along_axis(i, pick, 1)


def _exact_sq(q: jax.Array, x: jax.Array, idx: jax.Array) -> jax.Array:
  """||q_i - x_idx[i, j]||^2 by direct differences in float32 (no cancellation)."""
  diff = q.astype(jnp.float32)[:, None, :] - x.astype(jnp.float32)[idx]
  return jnp.sum(diff * diff, axis=-1)


def _finish(q, x, d2, idx, recompute: bool):
  """Distances (not squared) of the k found neighbours, re-sorted after an exact recompute."""
  if recompute:
    d2 = _exact_sq(q, x, idx)
    order = jnp.argsort(d2, axis=1)
    d2, idx = jnp.take_along_axis(d2, order, 1), jnp.take_along_axis(idx, order, 1)
  return jnp.sqrt(d2), idx


def excluded(bi, bb: int, n: int, x_offset, n_valid, q_idp, qi, bq: int) -> jax.Array:
  """Which rows of base block `bi` (of `bb` rows) a tile of query block `qi` (of `bq`) must
  not use, (1 or bq, bb): padding (row >= n), ids x_offset + row >= `n_valid` (None: no
  such bound), and each query's own id from the padded `q_idp` (None: no self-match)."""
  local = bi * bb + jnp.arange(bb)
  ids = x_offset + local
  mask = (local >= n)[None, :]
  if n_valid is not None:
    mask = mask | (ids >= n_valid)[None, :]
  if q_idp is not None:
    mask = mask | (lax.dynamic_slice_in_dim(q_idp, qi * bq, bq)[:, None] == ids[None, :])
  return mask


def search(q, x, k: int, *, block_size: int, q_ids=None, x_offset=0, n_valid=None,
           approx: bool = False) -> tuple[jax.Array, jax.Array]:
  """The blockwise search, traced inside a caller's jit: per row of `q`, the k smallest
  squared distances to rows of `x` (ascending, from the matmul expansion: not recomputed)
  and their ids `x_offset + row`. Rows whose id is `n_valid` or more are never chosen, nor
  row `q_ids[i]` for query i (self-matches) when `q_ids` is given. Memory O(block^2 + m k)."""
  m, n = q.shape[0], x.shape[0]
  bq, bb = min(block_size, m), min(block_size, n)
  qp, xp = _pad_rows(q, bq), _pad_rows(x, bb)
  n_qb, n_bb = qp.shape[0] // bq, xp.shape[0] // bb
  q_idp = None if q_ids is None else jnp.pad(q_ids, (0, qp.shape[0] - m), constant_values=-1)

  def query_block(qi):
    qb = lax.dynamic_slice_in_dim(qp, qi * bq, bq)

    def base_block(carry, bi):
      xb = lax.dynamic_slice_in_dim(xp, bi * bb, bb)
      mask = excluded(bi, bb, n, x_offset, n_valid, q_idp, qi, bq)
      d2 = jnp.where(mask, _BIG, sq_dists(qb, xb))
      vals, cols = _smallest_k(d2, min(k, bb), approx)
      cand_d = jnp.full((bq, k), _BIG).at[:, : vals.shape[1]].set(vals)
      cand_i = jnp.zeros((bq, k), jnp.int32).at[:, : cols.shape[1]].set(
          cols + bi * bb + x_offset)
      return _merge(*carry, cand_d, cand_i, k), None

    init = (jnp.full((bq, k), _BIG), jnp.zeros((bq, k), jnp.int32))
    (best_d, best_i), _ = lax.scan(base_block, init, jnp.arange(n_bb))
    return best_d, best_i

  d2, idx = lax.map(query_block, jnp.arange(n_qb))
  return d2.reshape(-1, k)[:m], idx.reshape(-1, k)[:m]


@functools.partial(
    jax.jit, static_argnames=("k", "block_size", "exclude_self", "recompute", "approx")
)
def knn(
    queries: jax.Array,
    base: jax.Array,
    k: int = 1,
    *,
    block_size: int = 1024,
    exclude_self: bool = False,
    query_offset: jax.Array | int = 0,
    recompute: bool = True,
    approx: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """k nearest points of `base` for each query: (distances (m, k) ascending, indices (m, k)).

  `exclude_self` drops base point `query_offset + i` for query i (queries being rows of
  base starting at `query_offset`). `recompute` recomputes the final k distances directly
  in float32; `approx` uses `lax.approx_min_k` per tile (TPU-native, exact on CPU).
  """
  _check(queries, "queries")
  _check(base, "base")
  q_ids = query_offset + jnp.arange(queries.shape[0]) if exclude_self else None
  d2, idx = search(queries, base, k, block_size=block_size, q_ids=q_ids, approx=approx)
  return _finish(queries, base, d2, idx, recompute)


def _reduce_k(t: jax.Array, axis: int, k: int) -> tuple[jax.Array, jax.Array]:
  """The k smallest entries of `t` along `axis` (ascending) and their positions."""
  if k == 1:
    val, idx = _argmin(t, axis)
    return val[:, None], idx[:, None]
  vals, idx = lax.top_k(-(t if axis == 1 else t.T), k)
  return -vals, idx.astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("k", "block_size", "recompute"))
def knn_self(
    x: jax.Array, k: int = 1, *, block_size: int = 1024, recompute: bool = True
) -> tuple[jax.Array, jax.Array]:
  """k nearest *other* points of each row of `x`, using the symmetry of the distance matrix.

  Tiles (i, j) with i <= j are computed once; tile (i, j) updates the running top-k of
  row block i (reducing over columns) and of row block j (reducing over rows). Squared
  norms are added after the reduction (they do not change the order within a row), and
  padded rows get an infinite norm so they are never chosen.
  """
  _check(x, "x")
  n = x.shape[0]
  b = min(block_size, n)
  if k >= b or x.shape[1] <= DIRECT_MAX_DIM:
    return knn(x, x, k, block_size=max(block_size, k + 1), exclude_self=True, recompute=recompute)
  xp = _pad_rows(x, b)
  nb = xp.shape[0] // b
  xf = xp.astype(jnp.float32)
  norms = jnp.where(jnp.arange(xp.shape[0]) < n, jnp.sum(xf * xf, axis=1), _BIG).reshape(nb, b)
  pairs = jnp.array([(i, j) for i in range(nb) for j in range(i, nb)], jnp.int32)
  eye = jnp.eye(b, dtype=bool)

  def tile(carry, pair):
    best_d, best_i = carry
    i, j = pair[0], pair[1]
    xi = lax.dynamic_slice_in_dim(xp, i * b, b)
    xj = lax.dynamic_slice_in_dim(xp, j * b, b)
    dot2 = -2.0 * precision.dot_f32(xi, xj, ((1,), (1,)))
    # Self-matches (only on diagonal tiles) masked inside the fused reductions.
    self_match = (i == j) & eye
    rows_d, rows_c = _reduce_k(jnp.where(self_match, _BIG, dot2 + norms[j][None, :]), 1, k)
    rows_d = jnp.maximum(rows_d + norms[i][:, None], 0.0)
    cols_d, cols_c = _reduce_k(jnp.where(self_match, _BIG, dot2 + norms[i][:, None]), 0, k)
    cols_d = jnp.maximum(cols_d + norms[j][:, None], 0.0)
    cols_d = jnp.where(i == j, _BIG, cols_d)  # the diagonal tile already covered both ways
    ri, rd = _merge(best_d[i], best_i[i], rows_d, rows_c + j * b, k)[::-1]
    best_d, best_i = best_d.at[i].set(rd), best_i.at[i].set(ri)
    ci, cd = _merge(best_d[j], best_i[j], cols_d, cols_c + i * b, k)[::-1]
    return (best_d.at[j].set(cd), best_i.at[j].set(ci)), None

  init = (jnp.full((nb, b, k), _BIG), jnp.zeros((nb, b, k), jnp.int32))
  (d2, idx), _ = lax.scan(tile, init, pairs)
  return _finish(x, x, d2.reshape(-1, k)[:n], idx.reshape(-1, k)[:n], recompute)
