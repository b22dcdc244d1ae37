"""Closed-form laws of collapse that the loop must obey (checked in tests/test_theory.py).

Each is for the loop with no selection, pool_factor 1 and the named paradigm.
"""

import numpy as np
from scipy.special import digamma


def wishart_entropy_change(n: int, d: int) -> float:
  """E[H_{g+1} - H_g] of the fitted Gaussian's entropy under replace (model.kind=gaussian).

  Generation g+1 fits n exact samples of N(mu_g, Sigma_g) by maximum likelihood, so
  n Sigma_{g+1} = S ~ Wishart_d(Sigma_g, n - 1) (one degree of freedom goes to the mean),
  and E log det S = log det Sigma_g + sum_{i=0}^{d-1} psi((n - 1 - i) / 2) + d log 2. The
  entropy is (1/2) log det(2 pi e Sigma), hence
  E[H_{g+1} - H_g] = (1/2) [sum_{i=0}^{d-1} psi((n - 1 - i) / 2) + d log(2 / n)] < 0.
  """
  if n <= d:
    raise ValueError(f"n={n} samples give a singular covariance in d={d} dimensions.")
  return 0.5 * float(np.sum(digamma((n - 1 - np.arange(d)) / 2)) + d * np.log(2 / n))


def mean_step_variance(trace: float, n: int) -> float:
  """E|mu_{g+1} - mu_g|^2 = tr(Sigma_g) / n under replace: the fitted mean is the average of
  n samples of the previous model, so it takes a random walk whose step has that variance
  (and E|mu_{g+1}|^2 - |mu_g|^2 = tr(Sigma_g) / n, the cross term having mean zero)."""
  return trace / n


def accumulate_mean_error(trace: float, n: int, generations: int) -> float:
  """E|mu_t - mu|^2 of the fitted mean under accumulate_all (all data kept; Gerstgrasser et
  al. 2024), with the covariance held at Sigma: generation t fits the n real rows and n
  samples of each model before it, so mu_t = mu_{t-1} + (xbar_t - mu_{t-1}) / t with
  xbar_t the mean of n samples around mu_{t-1}; the errors add as sum_{k=1}^t 1/k^2,
  bounded by pi^2/6 tr(Sigma) / n for every t (replace: t tr(Sigma) / n, unbounded).
  The fitted covariance shrinks in expectation, so the loop's value lies at or below this."""
  k = np.arange(1, generations + 1)
  return trace / n * float(np.sum(1.0 / k**2))


def kde_variance_next(variance: float, n: int, d: int, bandwidth: float) -> float:
  """E[V_{g+1} | V_g] of the unbiased total variance of n KDE samples (model.kind=kde).

  The KDE of n rows is their empirical distribution convolved with N(0, h^2 I): its total
  variance is the rows' (divide by n) plus d h^2, and an unbiased sample variance has that
  expectation; the rows of generation g have unbiased variance V_g, i.e. (1 - 1/n) V_g
  divided by n. So E[V_{g+1} | V_g] = (1 - 1/n) V_g + d h^2: growth of d h^2 per generation
  once n is large."""
  return (1 - 1 / n) * variance + d * bandwidth**2


def wright_fisher_unique(types: np.ndarray, generations: int, replicates: int,
                         rng: np.random.Generator) -> np.ndarray:
  """(replicates, generations) distinct types among each generation's n draws, over n.

  The memorizer under replace draws each of its n samples as a uniformly chosen training
  row (an exact copy), and those samples are the next training set: Wright-Fisher
  resampling. `types` labels the n rows of the first training set (equal rows, one type).
  From n distinct rows, generation 1 gives 1 - (1 - 1/n)^n in expectation.
  """
  n = len(types)
  pop = np.broadcast_to(np.asarray(types), (replicates, n)).copy()
  out = np.empty((replicates, generations))
  for g in range(generations):
    pop = np.take_along_axis(pop, rng.integers(n, size=(replicates, n)), axis=1)
    s = np.sort(pop, axis=1)
    out[:, g] = (1 + np.sum(s[:, 1:] != s[:, :-1], axis=1)) / n
  return out
