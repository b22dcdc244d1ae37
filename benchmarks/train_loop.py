"""The digits train loop (diffusion/fit.py) at one step per jitted call against K steps per
call (lax.scan), on the loop's device-resident uint8 training set: steps/s of each and the
ratio, measured in the same run.

  .venv/bin/python benchmarks/train_loop.py [--k 10] [--steps 400]

Each fit compiles first (an untimed warm-up fit of the same shapes), then trains `--steps`
steps in a fresh workdir; logging and checkpoints every 100 steps, as the digits config.
"""

import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "configs"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import digits  # noqa: E402
from common import device_line  # noqa: E402

from collapse_jax import logs  # noqa: E402
from collapse_jax.data import load_digits  # noqa: E402
from collapse_jax.diffusion.fit import fit  # noqa: E402
from collapse_jax.models.unet import unet_from_config  # noqa: E402
from collapse_jax.sharding import make_mesh, put_rows  # noqa: E402


def steps_per_s(k: int, steps: int) -> float:
  config = digits.get_config("")
  config.train.update(num_steps=steps, log_every=100, checkpoint_every=100, steps_per_call=k)
  images, _ = load_digits()
  mesh = make_mesh(config.mesh)
  arrays = {"image": put_rows(np.round((images[:160] + 1) * 127.5).astype(np.uint8), mesh)}
  model = unet_from_config(config.model, (8, 8, 1), 10)
  times = []
  for _ in range(2):  # the first compiles
    with tempfile.TemporaryDirectory() as workdir, jax.set_mesh(mesh):
      t0 = time.perf_counter()
      fit(config, arrays, workdir, mesh, model, jax.random.key(0))
      times.append(time.perf_counter() - t0)
  return steps / times[-1]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--k", type=int, default=10)
  parser.add_argument("--steps", type=int, default=400)
  args = parser.parse_args()
  logs.setup(level=30)
  print(device_line())
  one = steps_per_s(1, args.steps)
  many = steps_per_s(args.k, args.steps)
  print(f"steps/s: 1 step per call {one:.1f}, {args.k} steps per call {many:.1f}: "
        f"ratio {many / one:.2f}")


if __name__ == "__main__":
  main()
