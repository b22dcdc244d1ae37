"""Exact kNN over a set split across every device of the mesh: queries stay, the base travels.

Each of the D devices (all mesh axes, flattened) holds n/D query rows and n/D base rows. In
D rounds the base blocks go around a ring (`lax.ppermute` over every mesh axis): each round
a device searches the block it holds (`knn.search`, tiles of `block_size`), recomputes its
candidates' distances directly in float32 while their rows are at hand, and merges them
into a running top-k; the next block's transfer has no dependence on that search, so the
two overlap. No device ever holds the whole set: memory O(n/D + block^2). Rows keep their
dtype on the way (uint8 pixels travel as bytes); tiles are read as bfloat16 or float32
with float32 accumulation (`collapse_jax.precision`).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from collapse_jax.kernels.knn import _BIG, _check, _exact_sq, _pad_rows, search


def _exact_blocks(q, x, idx, block: int) -> jax.Array:
  """`knn._exact_sq` a block of queries at a time: float32 copies of (block, k, d) rows,
  never of a device's whole share."""
  m, k = idx.shape
  b = min(block, m)
  qp = _pad_rows(q, b).reshape(-1, b, q.shape[1])
  ip = _pad_rows(idx, b).reshape(-1, b, k)
  return lax.map(lambda a: _exact_sq(a[0], x, a[1]), (qp, ip)).reshape(-1, k)[:m]


def _merge_by_index(best, new_d, new_i, k):
  """The k smallest of two candidate lists, equal distances ordered by base index: rounds
  visit the blocks in a different order on each device, and exact ties (duplicate rows)
  must go to the smallest index, as on one device."""
  d = jnp.concatenate([best[0], new_d], axis=1)
  i = jnp.concatenate([best[1], new_i], axis=1)
  d, i = lax.sort((d, i), dimension=1, num_keys=2)
  return d[:, :k], i[:, :k]


def _round(q, xb, src, best, *, k, block_size, n_base, q_ids):
  """One round: the k nearest of block `src` (the block this device holds now), exact,
  merged into `best`."""
  mb = xb.shape[0]
  d2, idx = search(q, xb, k, block_size=block_size, q_ids=q_ids, x_offset=src * mb,
                   n_valid=n_base)
  exact = _exact_blocks(q, xb, jnp.clip(idx - src * mb, 0, mb - 1), block_size)
  return _merge_by_index(best, jnp.where(d2 < _BIG, exact, _BIG), idx, k)


def ring_rounds(step, carry, x, axes: tuple[str, ...], n_devices: int):
  """Inside a shard_map over `axes`: `carry = step(carry, block, src)` for each of the
  n_devices base blocks, this device's own (`x`) first, block `src` arriving by a ring of
  `lax.ppermute`; the next transfer does not depend on `step`, so the two overlap."""
  me = lax.axis_index(axes)
  perm = [(i, (i + 1) % n_devices) for i in range(n_devices)]

  def body(c, r):
    carry, xb = c
    nxt = lax.ppermute(xb, axes, perm)
    return (step(carry, xb, (me - r) % n_devices), nxt), None

  (carry, xb), _ = lax.scan(body, (carry, x), jnp.arange(n_devices - 1))
  return step(carry, xb, (me - (n_devices - 1)) % n_devices)


@functools.partial(jax.jit,
                   static_argnames=("k", "block_size", "mesh", "exclude_self", "n_base"))
def _ring_knn(queries, base, *, k, block_size, mesh, exclude_self, n_base):
  axes = tuple(mesh.axis_names)

  def local(q, x):
    me = lax.axis_index(axes)
    q_ids = me * q.shape[0] + jnp.arange(q.shape[0]) if exclude_self else None
    best = (jnp.full((q.shape[0], k), _BIG), jnp.zeros((q.shape[0], k), jnp.int32))
    d2, idx = ring_rounds(
        lambda best, xb, src: _round(q, xb, src, best, k=k, block_size=block_size,
                                     n_base=n_base, q_ids=q_ids), best, x, axes, mesh.size)
    return jnp.sqrt(d2), idx

  return jax.shard_map(local, mesh=mesh, in_specs=(P(axes), P(axes)),
                       out_specs=(P(axes), P(axes)), check_vma=False)(queries, base)


def ring_knn(queries, base, k: int = 1, *, mesh: Mesh, block_size: int = 1024,
             exclude_self: bool = False) -> tuple[jax.Array, jax.Array]:
  """k nearest rows of `base` for each query, searched over every device of `mesh`:
  (distances (m, k) ascending, indices into base (m, k)), rows split like the queries.

  `exclude_self` (queries being base itself) drops each row's own match. Rows are padded
  to a multiple of the device count; padding is never a neighbour."""
  queries, base = jnp.asarray(queries), jnp.asarray(base)
  _check(queries, "queries")
  _check(base, "base")
  if queries.shape[1] != base.shape[1]:
    raise ValueError(f"queries have {queries.shape[1]} features and base {base.shape[1]}; "
                     "embed both in the same space.")
  m, n = queries.shape[0], base.shape[0]
  if not 1 <= k <= n - exclude_self:
    raise ValueError(f"k={k} must be in [1, {n - exclude_self}] for {n} base points.")
  dist, idx = _ring_knn(_pad_rows(queries, mesh.size), _pad_rows(base, mesh.size), k=k,
                        block_size=block_size, mesh=mesh, exclude_self=exclude_self,
                        n_base=n)
  return dist[:m], idx[:m]
