"""The excess entropy of a training set along the forward process (Biroli, Bonnaire, de
Bortoli and Mezard 2024, "Dynamical regimes of diffusion models"): the kernel of the
collapse time.

With x_t = a e^{-t} + sqrt(D_t) z, D_t = 1 - e^{-2t}, the empirical noised distribution of
N training rows a_i is P^e_t(x) = (1/N) sum_i N(x; a_i e^{-t}, D_t I), and for query rows
b_j of the true distribution noised with their own z_j,

  f^e(t) = (1/d) E_j[log P^e_t(x_j)] + log(N)/d + (1/2) log(2 pi e D_t)
         = (1/d) E_j[LSE_i(-e^{-2t} |b_j - a_i|^2 / (2 D_t)
                           - e^{-t} z_j.(b_j - a_i) / sqrt(D_t)) - |z_j|^2 / 2] + 1/2
         = (1/d) E_j[LSE_i(...)],

the last by E|z|^2 = d, taken exact rather than sampled: a control variate that cuts the
estimate's standard deviation 5-8x (measured at d = 784, N = 160, 160 queries, where
|z_j|^2's own spread, ~1/sqrt(2 d M), is the size of f^e near its root). This form needs,
per (query, training row) tile, two products (|b - a|^2, z.a) for every t at once, and no
noised copy of anything. The log-sum-exp over all N training rows runs blockwise with a
running (max, sum) per query and time, so memory is O(block^2 + m T); on a mesh the
queries are split over every device and the training rows travel around a ring
(`ring.ring_rounds`), as in the kNN. Distances are exact float32 (`knn.sq_dists`); rows may
be uint8 (model units `scale * u + shift`; the shift cancels in |b - a|^2).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from collapse_jax import precision
from collapse_jax.kernels.knn import _check, _pad_rows, excluded, sq_dists
from collapse_jax.kernels.ring import ring_rounds

_NEG = -jnp.inf


def _merge(carry, m, s):
  """Running log-sum-exp: (max, sum of exp(. - max)) of two partial sums."""
  big, total = carry
  top = jnp.maximum(big, m)
  safe = jnp.where(jnp.isfinite(top), top, 0.0)
  return top, total * jnp.exp(big - safe) + s * jnp.exp(m - safe)


def _tile(qb, zb, zqb, xb, mask, ts, scale, shift):
  """Partial log-sum-exps of one (query block, base block) tile at every time: (T, bq)
  maxima and sums over the base rows not masked."""
  s2 = (scale * scale) * sq_dists(qb, xb)  # exact: the shift cancels
  za = scale * precision.dot_f32(zb, xb, ((1,), (1,))) + shift * jnp.sum(zb, axis=1)[:, None]

  def at(t):
    e = jnp.exp(-t)
    d = -jnp.expm1(-2.0 * t)
    arg = -(e * e / (2.0 * d)) * s2 - (e / jnp.sqrt(d)) * (zqb[:, None] - za)
    arg = jnp.where(mask, _NEG, arg)
    m = jnp.max(arg, axis=1)
    safe = jnp.where(jnp.isfinite(m), m, 0.0)
    return m, jnp.sum(jnp.exp(arg - safe[:, None]), axis=1)

  return lax.map(at, ts)


def _lse_rows(q, z, x, ts, carry, *, block_size, scale, shift, q_ids, x_offset, n_valid):
  """`carry` ((T, m) maxima and sums) updated with every row of `x` (ids x_offset + row;
  ids >= n_valid, and query i's own id q_ids[i], left out)."""
  m, n = q.shape[0], x.shape[0]
  bq, bb = min(block_size, m), min(block_size, n)
  qp, zp, xp = _pad_rows(q, bq), _pad_rows(z, bq), _pad_rows(x, bb)
  q_idp = None if q_ids is None else jnp.pad(q_ids, (0, qp.shape[0] - m), constant_values=-1)
  qf = scale * qp.astype(jnp.float32) + shift
  zq = jnp.sum(zp * qf, axis=1)  # z_j . b_j in model units, once per query

  def query_block(args):
    qi, big, total = args
    qb = lax.dynamic_slice_in_dim(qp, qi * bq, bq)
    zb = lax.dynamic_slice_in_dim(zp, qi * bq, bq)
    zqb = lax.dynamic_slice_in_dim(zq, qi * bq, bq)

    def base_block(c, bi):
      xb = lax.dynamic_slice_in_dim(xp, bi * bb, bb)
      mask = excluded(bi, bb, n, x_offset, n_valid, q_idp, qi, bq)
      return _merge(c, *_tile(qb, zb, zqb, xb, mask, ts, scale, shift)), None

    out, _ = lax.scan(base_block, (big, total), jnp.arange(xp.shape[0] // bb))
    return out

  nq = qp.shape[0] // bq
  big, total = (_pad_rows(c.T, bq).reshape(nq, bq, -1).transpose(0, 2, 1) for c in carry)
  big, total = lax.map(query_block, (jnp.arange(nq), big, total))
  return tuple(c.transpose(1, 0, 2).reshape(len(ts), -1)[:, :m] for c in (big, total))


def _finish(big, total):
  """(m, T) per-query LSE_i(...)."""
  return (big + jnp.log(total)).T


def _noise(key, ids, d):
  """Each query's z from the key and its global row id: the same on any mesh."""
  return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (d,)))(ids)


@functools.partial(jax.jit, static_argnames=("block_size", "scale", "shift", "exclude_self",
                                             "n_base", "mesh"))
def _per_query(queries, base, ts, key, *, block_size, scale, shift, exclude_self, n_base,
               mesh):
  t = ts.shape[0]

  def local(q, x, me, n_dev):
    ids = me * q.shape[0] + jnp.arange(q.shape[0])
    z = _noise(key, ids, q.shape[1])
    q_ids = ids if exclude_self else None
    init = (jnp.full((t, q.shape[0]), _NEG), jnp.zeros((t, q.shape[0])))

    def step(carry, xb, src):
      return _lse_rows(q, z, xb, ts, carry, block_size=block_size, scale=scale, shift=shift,
                       q_ids=q_ids, x_offset=src * xb.shape[0], n_valid=n_base)

    if n_dev == 1:
      return _finish(*step(init, x, 0))
    axes = tuple(mesh.axis_names)
    return _finish(*ring_rounds(step, init, x, axes, n_dev))

  if mesh is None or mesh.size == 1:
    return local(queries, base, 0, 1)
  axes = tuple(mesh.axis_names)
  return jax.shard_map(lambda q, x: local(q, x, lax.axis_index(axes), mesh.size), mesh=mesh,
                       in_specs=(P(axes), P(axes)), out_specs=P(axes),
                       check_vma=False)(queries, base)


def excess_entropy(queries, train, ts, key, *, scale: float = 1.0, shift: float = 0.0,
                   exclude_self: bool = False, mesh: Mesh | None = None,
                   block_size: int = 512) -> jax.Array:
  """f^e at each forward time in `ts` (T,): the training rows' empirical noised density
  scored on the query rows, each noised with its own z (drawn from `key` and the row's
  index: the same z at every t, so f^e is smooth in t). Rows are in the units
  `scale * row + shift` (uint8 pixels: 1/127.5, -1). `exclude_self` makes the queries the
  training set's first rows, each left out of its own sum (leave-one-out). Returns (T,)
  float32, the mean over queries on the devices."""
  queries, train = jnp.asarray(queries), jnp.asarray(train)
  _check(queries, "queries")
  _check(train, "train")
  if queries.shape[1] != train.shape[1]:
    raise ValueError(f"queries have {queries.shape[1]} features and train "
                     f"{train.shape[1]}; give both in the same space.")
  m, n, d = queries.shape[0], train.shape[0], train.shape[1]
  if n - exclude_self < 1 or m < 1:
    raise ValueError(f"need a query and a training row besides it: {m} queries, {n} rows.")
  devices = 1 if mesh is None else mesh.size
  per_query = _per_query(_pad_rows(queries, devices), _pad_rows(train, devices),
                         jnp.asarray(ts, jnp.float32), key, block_size=block_size,
                         scale=float(scale), shift=float(shift), exclude_self=exclude_self,
                         n_base=n, mesh=mesh)
  return jnp.mean(per_query[:m], axis=0) / d
