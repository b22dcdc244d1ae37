"""Class-conditional loop with classifier-free guidance on the embedded digits (the paper's
MNIST study, at CPU scale): each generation samples uniform labels with guidance, keeps the
labels with the images, and selects within each class.

  python scripts/recursive.py --config configs/digits_cfg.py --workdir runs/digits_cfg
  python scripts/recursive.py --config configs/digits_cfg.py:greedy --workdir runs/cfg_greedy
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import digits  # noqa: E402

VARIANTS = digits.VARIANTS


def get_config(arg=None):
  config = digits.get_config(arg, config_file="configs/digits_cfg.py")
  config.model.class_conditional = True
  config.train.label_dropout = 0.1
  config.sample.guidance_scale = 2.0
  config.loop.select_per_class = True
  return config
