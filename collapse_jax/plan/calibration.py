"""The planner held to a published measurement: Ho et al. 2020 (arXiv 2006.11239, Appendix
B) trained their CIFAR-10 DDPM (35.7M parameters: 128 channels, multipliers 1, 2, 2, 2, two
residual blocks per level, attention at 16x16, dropout 0.1) at batch 128 on a TPU v3-8 at
21 steps/s.

The planner's bound for that step on `tpu:v3:2x2` (8 TensorCores), compiled here by
tests/aot/test_aot.py::test_ddpm_cifar10_on_a_v3_8_against_its_published_speed, is
BOUND_STEP_S. A bound above the measured time would be a bug in the planner (a lower bound
the real run beat); measured / bound is the share of the roofline a well-tuned diffusion
UNet step reached, and a plan's "expected" times are its bounds over that share: an
estimate labelled as such, not a bound.
"""

import ml_collections

MEASURED_STEPS_PER_S = 21.0
SOURCE = ("Ho et al. 2020, arXiv 2006.11239 Appendix B: the 35.7M-parameter CIFAR-10 DDPM "
          "at batch 128 trained at 21 steps/s on a TPU v3-8")
TARGET = "tpu:v3:2x2"
# The planner's bound for that step on TARGET (jax/libtpu 0.12.0.1; the test recompiles it
# and fails when it moves by more than 10%): HBM traffic 5.59 GB per device per step at
# 450 GB/s per TensorCore (12.4 ms) over FLOPs 560 GFLOP at 61.5 TFLOP/s (9.1 ms), plus
# the gradient all-reduce (143 MB, 1.5 ms).
BOUND_STEP_S = 0.01392
EFFICIENCY = MEASURED_STEPS_PER_S * BOUND_STEP_S  # measured speed / bound speed


def ddpm_cifar10(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` (configs/cifar10.py's) with Ho et al.'s model and batch."""
  config = ml_collections.ConfigDict(config.to_dict())
  m = config.model
  m.channels, m.attention_levels, m.layers_per_block = (128, 256, 256, 256), (1,), 2
  m.norm_groups, m.head_dim, m.dropout, m.dtype = 32, 256, 0.1, "float32"
  m.class_conditional = False
  config.train.batch_size = 128
  config.mesh = {"data": -1, "fsdp": 1}
  return config


def expected_s(bound_s: float) -> float:
  """A bound's expected time at the calibration's share of the roofline."""
  return bound_s / EFFICIENCY
