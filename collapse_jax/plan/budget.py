"""Before a run starts: the least time its training and sampling can take on the platform
it found, and a refusal when that is over an hour (the paper's CIFAR-10 settings on a
laptop's CPU would otherwise start silently and run for weeks).

The FLOPs are XLA's count of the run's own train step and denoising step (lowered, not
compiled: seconds), times the steps and images of every generation. The rate is a peak:
the published bf16 FLOP/s of each accelerator chip (plan/targets.py), or on a CPU a float32
matmul measured here. FLOPs over a peak is a lower bound; a run is refused only when even
that is over the limit.
"""

import dataclasses
import logging

import jax

from collapse_jax import chips, distributed, platform, sharding
from collapse_jax.errors import ConfigError
from collapse_jax.plan import analyze, programs

log = logging.getLogger(__name__)

LIMIT_H = 1.0
ALLOW = "allow_slow_platform"


@dataclasses.dataclass(frozen=True)
class Estimate:
  """FLOPs of the whole run and the rate it is bounded by."""

  flops: float
  rate: float
  rate_source: str

  @property
  def hours(self) -> float:
    return self.flops / self.rate / 3600


def run_flops(config, generations: int, images_per_generation: int) -> float:
  """Train-step FLOPs x steps plus denoising-step FLOPs x steps x images, per generation."""
  try:
    cpu = jax.devices("cpu")[:1]
  except RuntimeError:
    cpu = jax.devices()[:1]
  mesh = sharding.make_mesh({"data": 1, "fsdp": 1}, cpu)
  with jax.set_mesh(mesh):
    train, sampler = programs.diffusion_programs(config, mesh)
    step = analyze.cpu_flops(train) * train.calls
    per_image = analyze.cpu_flops(sampler.unit) * sampler.trips / sampler.unit.args[1].shape[0]
  return generations * (step + per_image * images_per_generation)


def platform_rate(devices) -> tuple[float, str]:
  """(FLOP/s, where it comes from) of `devices` together; (0, why) when unknown."""
  d = devices[0]
  per_device, source = chips.device_peak(d.device_kind, d.platform, len(devices))
  n = len(devices)
  return per_device * n, f"{n} device{'s' * (n != 1)} x {per_device / 1e12:.3g} TFLOP/s: {source}"


def estimate(config, job: str = "recursive") -> Estimate | None:
  """The run's lower-bound cost on this platform, or None where it has no estimate
  (closed-form generators, non-image data, an unknown chip)."""
  if config.model.kind != "unet":
    return None
  try:
    programs.data_shape(config)
  except ConfigError:
    return None
  if job == "recursive":
    generations = int(config.loop.generations)
    images = programs.sizes(config)["pool"]
  else:
    generations, images = 1, int(config.sample.num_images)
  devices = jax.devices() if jax.process_count() > 1 else platform.visible_devices()
  rate, source = platform_rate(devices)
  if not rate:
    log.info("no time estimate: %s", source)
    return None
  return Estimate(run_flops(config, generations, images), rate, source)


def check(config, job: str = "recursive") -> Estimate | None:
  """Logs the estimate; raises ConfigError (one line) when it is over LIMIT_H hours and
  config.allow_slow_platform is false. Every process takes process 0's estimate."""
  if config.get(ALLOW, False):
    return None
  est = estimate(config, job)
  if est is None:
    return None
  hours = distributed.agree(float(est.hours))  # one decision: process 0's measured rate
  line = (f"at least {hours:.3g} h of compute on this platform ({est.flops:.3g} FLOPs at "
          f"{est.rate_source})")
  if hours > LIMIT_H:
    raise ConfigError(f"this run needs {line}, over the {LIMIT_H:g} h limit for an unattended "
                      f"start: run it on accelerators (README: GPU and TPU installs), make it "
                      f"smaller, or pass --config.{ALLOW}=True to start it anyway.")
  log.info("time: %s", line)
  return est
