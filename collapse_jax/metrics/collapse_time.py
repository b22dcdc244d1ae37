"""The collapse time t_C of a training set (Biroli, Bonnaire, de Bortoli and Mezard 2024):
the forward time below which the backward dynamics of its empirical score fall onto
training rows. t_C is the root of the excess entropy f^e(t) (`kernels.excess`): negative
below (a noised point of the true distribution is nearer one training row than the
noise spreads them), positive above.

The loop reports t_C in forward time and as `collapse_step`: how many of the DDPM
schedule's T steps lie at or below it (t_k = -log(alphabar_k) / 2), the denoising steps a
sampler spends in the collapse regime.
"""

import math
from typing import NamedTuple

import jax
import numpy as np

from collapse_jax.kernels.excess import excess_entropy

GRID = 32  # times per pass: a log-spaced pass over the schedule, then one inside the bracket


class CollapseTime(NamedTuple):
  """t: the root (0 when f^e >= 0 over the whole schedule, inf when it is < 0 over all of
  it); step: schedule steps at or below t; crossings: sign changes of f^e on the first pass
  (1 when monotone; more, and the largest root is taken: the one a sampler meets first)."""

  t: float
  step: int
  crossings: int


def forward_times(alphas_cumprod) -> np.ndarray:
  """t_k = -log(alphabar_k) / 2 of each schedule step (e^{-t} = sqrt(alphabar))."""
  return -0.5 * np.log(np.asarray(alphas_cumprod, np.float64))


def steps_below(t: float, alphas_cumprod) -> int:
  """How many schedule steps have t_k <= t."""
  return int(np.sum(forward_times(alphas_cumprod) <= t))


def gaussian_collapse_time(variance: float, n: int, d: int) -> float:
  """Closed form for n points of N(0, variance I_d) as d grows (Biroli et al. 2024):
  t_C = (1/2) log(1 + variance / (n^{2/d} - 1))."""
  return 0.5 * math.log1p(variance / math.expm1(2.0 * math.log(n) / d))


def _largest_root(ts: np.ndarray, f: np.ndarray) -> tuple[int, int]:
  """(index k with f[k] < 0 <= f[k + 1] at the largest such k, or -1; number of sign
  changes)."""
  neg = f < 0
  changes = int(np.sum(neg[:-1] != neg[1:]))
  up = np.flatnonzero(neg[:-1] & ~neg[1:])
  return (int(up[-1]) if len(up) else -1), changes


def collapse_time(train, queries, alphas_cumprod, key, *, scale: float = 1.0,
                  shift: float = 0.0, exclude_self: bool = False, mesh=None,
                  block_size: int = 512, grid: int = GRID) -> CollapseTime:
  """t_C of `train` with `queries` drawn from the same distribution (or, `exclude_self`,
  the training set's own first rows, each left out: leave-one-out). Two passes of the
  kernel: `grid` log-spaced times from the schedule's first step to its last, then `grid`
  inside the bracket of the largest sign change from below; the root is interpolated
  linearly there. f^e rises with t in every case measured; where it does not, the largest
  root is taken and `crossings` says so."""
  t_all = forward_times(alphas_cumprod)
  lo, hi = float(t_all[0]), float(t_all[-1])
  ts = np.geomspace(lo, hi, grid)

  def f_at(times):
    out = excess_entropy(queries, train, times, key, scale=scale, shift=shift,
                         exclude_self=exclude_self, mesh=mesh, block_size=block_size)
    return np.asarray(jax.device_get(out), np.float64)

  f = f_at(ts)
  k, crossings = _largest_root(ts, f)
  if k < 0:  # no rise through zero on the schedule
    t = math.inf if f[-1] < 0 else 0.0
    return CollapseTime(t, steps_below(t, alphas_cumprod), crossings)
  fine = np.linspace(ts[k], ts[k + 1], grid)
  f2 = f_at(fine)
  j, _ = _largest_root(fine, f2)
  if j < 0:  # the sign change sits at the coarse points themselves (noise in the last digit)
    fine, f2, j = ts[k:k + 2], f[k:k + 2], 0
  a, b = fine[j], fine[j + 1]
  t = float(a + (b - a) * (-f2[j]) / (f2[j + 1] - f2[j]))
  return CollapseTime(t, steps_below(t, alphas_cumprod), crossings)
