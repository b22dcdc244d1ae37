"""Every config file in configs/ refuses a variant it does not know, naming the valid ones,
and builds each one it lists."""

import glob
import os

import pytest

from collapse_jax import config_lib
from collapse_jax.study.sweep import load_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(f for f in glob.glob(os.path.join(ROOT, "configs", "*.py"))
               if "def get_config" in open(f).read())


def test_every_config_file_is_covered():
  names = {os.path.basename(f) for f in FILES}
  assert {"digits.py", "cifar10.py", "ffhq.py", "mnist_cfg.py", "digits_cfg.py",
          "theory.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_a_variant_typo_is_refused_naming_the_valid_ones(path):
  module = load_module(path)
  name = os.path.basename(path)
  for typo in ("greddy", "smoke,gredy"):
    with pytest.raises(ValueError, match=rf"configs/{name}:.*unknown variant.*valid") as e:
      module.get_config(typo)
    assert "greedy" in str(e.value)
  for v in module.VARIANTS:
    arg = v if name != "theory.py" or v in module.VARIANTS else f"gaussian,{v}"
    config = module.get_config(arg)
    config_lib.validate(config)
