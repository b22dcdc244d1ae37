"""Terminal progress: step, images/s, FLOP/s per device and MFU, and ETA, computed from wall
time between reports (MaxText's throughput lines)."""

import time


class Progress:
  """Tracks throughput since the last report and the ETA for the remaining steps."""

  def __init__(self, total_steps: int, start_step: int, batch_size: int, prefix: str = "",
               flops_per_step: float = 0.0, devices: int = 1, peak_flops: float = 0.0):
    """`flops_per_step`: the global step's FLOPs (0: unknown); `peak_flops`: one device's
    peak (0: unknown, no MFU)."""
    self.total_steps = total_steps
    self.flops_per_step, self.devices, self.peak_flops = flops_per_step, devices, peak_flops
    self.batch_size = batch_size
    self.prefix = prefix
    self._last_step = start_step
    self._last_time = time.perf_counter()

  def report(self, step: int) -> dict[str, float]:
    """{'images_per_sec', 'eta_sec'} for the steps since the previous report, and with the
    step's FLOPs known 'tflops_per_device' and (with a peak) 'mfu'."""
    now = time.perf_counter()
    steps = max(step - self._last_step, 1)
    dt = max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    out = {
        "images_per_sec": steps * self.batch_size / dt,
        "eta_sec": (self.total_steps - step) * dt / steps,
    }
    if self.flops_per_step > 0:
      per_device = self.flops_per_step * steps / dt / self.devices
      out["tflops_per_device"] = per_device / 1e12
      if self.peak_flops > 0:
        out["mfu"] = per_device / self.peak_flops
    return out

  def line(self, step: int, stats: dict[str, float], **scalars) -> str:
    eta = int(stats["eta_sec"])
    extra = " ".join(f"{k}={v:.4g}" for k, v in scalars.items())
    rate = ""
    if "tflops_per_device" in stats:
      rate = f" {stats['tflops_per_device']:.3g} TFLOP/s/device"
      rate += f" MFU {stats['mfu']:.1%}" if "mfu" in stats else ""
    return (
        f"{self.prefix}step {step}/{self.total_steps} {extra} "
        f"{stats['images_per_sec']:.0f} img/s{rate} "
        f"ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}"
    )
