"""The quality probe: a classifier fit on held-out real digits, read on other images."""


import numpy as np

from collapse_jax.data.digits import load_digits
from collapse_jax.images import to_uint8
from collapse_jax.metrics import probe


def _split(seed):
  images, labels = load_digits()
  x = to_uint8(images).reshape(len(images), -1).astype(np.float32)
  order = np.random.default_rng(seed).permutation(len(x))
  return x[order[:200]], x[order[200:1200]], labels[order[200:1200]]


def _softmax_confidence(judge, x):
  """The pipeline's probabilities recomputed in NumPy: standardise, affine, softmax."""
  scaler, logistic = judge[0], judge[-1]
  z = (x - scaler.mean_) / scaler.scale_
  logits = z @ logistic.coef_.T + logistic.intercept_
  p = np.exp(logits - logits.max(1, keepdims=True))
  return float(np.mean((p / p.sum(1, keepdims=True)).max(1)))


def test_confidence_is_the_mean_top_class_probability(seed):
  train, held, labels = _split(seed % 10**6)
  judge = probe.fit_probe(held, labels)
  assert np.isclose(probe.confidence(judge, train), _softmax_confidence(judge, train), rtol=1e-9)


def test_clean_digits_score_above_blends(seed):
  """Real digits it never saw score near 0.9; a blend of two digits scores lower, so a
  generalization score earned by between-class samples is caught. (Far-off noise a linear
  probe places confidently: the FD to the real set, `fd_real` against `fd_real_heldout`,
  is the measure that catches it.)"""
  train, held, labels = _split(seed % 10**6)
  judge = probe.fit_probe(held, labels)
  rng = np.random.default_rng(seed)
  clean = probe.confidence(judge, train)
  blend = probe.confidence(judge, 0.5 * train + 0.5 * train[rng.permutation(len(train))])
  assert clean > 0.8, (seed, clean)
  assert blend < clean - 0.15, (seed, clean, blend)
