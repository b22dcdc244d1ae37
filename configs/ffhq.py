"""The paper's FFHQ setting (resized to 32x32): as configs/cifar10.py, on a local image folder.

  python scripts/recursive.py --config configs/ffhq.py --workdir runs/ffhq \
      --config.data.path=/path/to/ffhq_images [--config.loop.selection=greedy]

Variants: as configs/cifar10.py (`accumulate`, `greedy`, `threshold`, `random`, `dino`).
Needs an accelerator; the images must already be on disk (nothing is downloaded).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar10  # noqa: E402

VARIANTS = cifar10.VARIANTS


def get_config(arg=None):
  config = cifar10.get_config(arg, config_file="configs/ffhq.py")
  config.data.name = "ffhq"
  config.data.resolution = 32  # the paper's setting; 64/128/256 work with a deeper UNet
  return config
