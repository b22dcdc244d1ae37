"""Terminal progress: step, images/s and ETA, computed from wall time between reports."""

import time


class Progress:
  """Tracks throughput since the last report and the ETA for the remaining steps."""

  def __init__(self, total_steps: int, start_step: int, batch_size: int, prefix: str = ""):
    self.total_steps = total_steps
    self.batch_size = batch_size
    self.prefix = prefix
    self._last_step = start_step
    self._last_time = time.perf_counter()

  def report(self, step: int) -> dict[str, float]:
    """Returns {'images_per_sec', 'eta_sec'} for the steps since the previous report."""
    now = time.perf_counter()
    steps = max(step - self._last_step, 1)
    dt = max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    return {
        "images_per_sec": steps * self.batch_size / dt,
        "eta_sec": (self.total_steps - step) * dt / steps,
    }

  def line(self, step: int, stats: dict[str, float], **scalars) -> str:
    eta = int(stats["eta_sec"])
    extra = " ".join(f"{k}={v:.4g}" for k, v in scalars.items())
    return (
        f"{self.prefix}step {step}/{self.total_steps} {extra} "
        f"{stats['images_per_sec']:.0f} img/s ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}"
    )
