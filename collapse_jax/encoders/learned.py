"""A feature space learned from real data that ships: a small CNN classifier trained once on
the held-out labelled real images, its penultimate layer the features (`features='learned'`).

The paper selects and measures in DINOv2 space, a pretrained encoder; the embedded default
has no weights to load, so this stands in: an encoder that never sees the loop's training
set or any sample, trained in ~10 s on a CPU, its parameters cached in the workdir keyed by the
images, labels, architecture and seed it was trained from (a resumed run reuses them).
"""

import functools
import hashlib
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import serialization

from collapse_jax import precision
from collapse_jax.encoders.extract import Encoder, to_rgb
from collapse_jax.images import from_uint8

log = logging.getLogger(__name__)

WIDTHS = (32, 64)  # conv widths, each followed by a 2x average pool
FEATURES = 64  # the penultimate layer's width: the feature space's dimension
STEPS, BATCH, LR, WEIGHT_DECAY = 800, 128, 2e-3, 1e-3
PRECISION = precision.EXACT
VERSION = 1  # bump when the architecture or training changes: old caches are then ignored


class SmallCNN(nn.Module):
  """conv-GELU-pool blocks, a global average, a dense feature layer; `head` classifies."""

  num_classes: int

  @nn.compact
  def __call__(self, x, head: bool = False):
    # Its features are distances' inputs: full float32 products, not a GPU's TF32 or a TPU's
    # bfloat16 passes (the default there), as the other encoders (collapse_jax/precision.py).
    conv = functools.partial(nn.Conv, kernel_size=(3, 3), precision=PRECISION)
    dense = functools.partial(nn.Dense, precision=PRECISION)
    for w in WIDTHS:
      x = nn.gelu(conv(w)(x))
      x = nn.gelu(conv(w)(x))
      x = nn.avg_pool(x, (2, 2), (2, 2)) if min(x.shape[1:3]) >= 2 else x
    x = nn.gelu(dense(FEATURES)(jnp.mean(x, axis=(1, 2))))
    return dense(self.num_classes)(x) if head else x


def _preprocess(images):
  return from_uint8(images)


def _shift(key, x):
  """Random translations by up to one pixel (edge-padded): the augmentation that keeps a
  classifier of ~1,000 images from memorizing them."""
  n = x.shape[0]
  dy, dx = jax.random.randint(key, (2, n), -1, 2)
  pad = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  return jax.vmap(lambda im, a, b: jax.lax.dynamic_slice(
      im, (1 + a, 1 + b, 0), x.shape[1:]))(pad, dy, dx)


def _train(images, labels, key, num_classes: int):
  """The CNN's parameters after STEPS AdamW steps of batch BATCH (cross-entropy), with its
  last 50 steps' mean loss and its accuracy on the training images. One jitted step per
  call from the host: XLA:CPU runs convolutions inside a `lax.scan` ~20x slower than the
  same step jitted alone (measured here: 230 vs 11 ms), and 800 calls cost nothing."""
  model = SmallCNN(num_classes)
  x_all = _preprocess(to_rgb(jnp.asarray(images)))
  labels = jnp.asarray(labels)
  init_key, key = jax.random.split(key)
  params = model.init(init_key, x_all[:1], head=True)["params"]
  tx = optax.adamw(optax.cosine_decay_schedule(LR, STEPS), weight_decay=WEIGHT_DECAY)
  batch = min(BATCH, x_all.shape[0])

  def loss_fn(p, x, y):
    logits = model.apply({"params": p}, x, head=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  @jax.jit
  def step(p, opt, k):
    k_idx, k_shift = jax.random.split(k)
    idx = jax.random.choice(k_idx, x_all.shape[0], (batch,), replace=False)
    loss, g = jax.value_and_grad(loss_fn)(p, _shift(k_shift, x_all[idx]), labels[idx])
    updates, opt = tx.update(g, opt, p)
    return optax.apply_updates(p, updates), opt, loss

  opt, losses = tx.init(params), []
  for k in jax.random.split(key, STEPS):
    params, opt, loss = step(params, opt, k)
    losses.append(loss)
  logits = jax.jit(lambda p: model.apply({"params": p}, x_all, head=True))(params)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return params, jnp.mean(jnp.stack(losses[-50:])), accuracy


def cache_key(images: np.ndarray, labels: np.ndarray, seed: int) -> str:
  """What the encoder is a function of: images, labels, seed and this module's VERSION."""
  h = hashlib.sha1(f"v{VERSION}-{seed}-{images.shape}".encode())
  h.update(np.ascontiguousarray(images).data)
  h.update(np.ascontiguousarray(labels, np.int64).data)
  return h.hexdigest()[:16]


def train_learned_encoder(images: np.ndarray, labels: np.ndarray, seed: int = 0,
                          cache_dir: str = "") -> Encoder:
  """The learned encoder of uint8 images (N, H, W, C) with int labels, trained once (or read
  from `cache_dir`, an atomic msgpack file)."""
  images, labels = np.asarray(images), np.asarray(labels, np.int32)
  num_classes = int(labels.max()) + 1
  model = SmallCNN(num_classes)
  name = f"learned-{cache_key(images, labels, seed)}"
  path = os.path.join(cache_dir, f"{name}.msgpack")
  if cache_dir and os.path.exists(path):
    with open(path, "rb") as f:
      params = serialization.msgpack_restore(f.read())
    log.info("learned encoder from %s", path)
  else:
    params, loss, acc = _train(images, labels, jax.random.key(seed), num_classes)
    params = jax.device_get(params)
    log.info("learned encoder: a %s-%d CNN trained on %d held-out real images (%d classes), "
             "final loss %.3f, training accuracy %.3f", "-".join(map(str, WIDTHS)), FEATURES,
             len(images), num_classes, float(loss), float(acc))
    if cache_dir and jax.process_index() == 0:
      os.makedirs(cache_dir, exist_ok=True)
      with open(f"{path}.tmp", "wb") as f:
        f.write(serialization.msgpack_serialize(params))
      os.replace(f"{path}.tmp", path)
  return Encoder(name, model, params, _preprocess)
