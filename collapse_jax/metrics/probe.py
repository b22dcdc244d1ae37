"""Sample quality by a judge that never saw the loop: a linear classifier fit on the held-out
labelled real images. A clean sample of a class gets a confident prediction; a blend of
classes does not, so a generalization score earned by between-class samples shows here.
Far-off noise a linear probe may still place confidently: the FD to the real set
(`fd_real` against `fd_real_heldout`) is the measure for that.
"""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit_probe(features: np.ndarray, labels: np.ndarray):
  """Standardised multinomial logistic regression on (held-out real) features."""
  probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
  return probe.fit(np.asarray(features, np.float64), np.asarray(labels))


def confidence(probe, features: np.ndarray) -> float:
  """Mean top-class probability the probe gives the rows: ~1 for clean class members,
  1 / classes for rows it cannot place."""
  proba = probe.predict_proba(np.asarray(features, np.float64))
  return float(np.mean(proba.max(axis=1)))
