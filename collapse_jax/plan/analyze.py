"""Compile a program for a target ahead of time and bound its time from what XLA reports.

Per program and per call, on one device: memory (arguments, outputs, temporaries, aliased)
from `memory_analysis()`; FLOPs from XLA's CPU cost analysis of the same function on the
same global shapes (the TPU's counts agree, the GPU's count cuDNN/cuBLAS calls as -1);
bytes from the target compiler's cost analysis where it has one (TPU, CPU), on GPU the
operands and results of every kernel of the optimized HLO (hlo.kernel_bytes: fusions and
cuBLAS/cuDNN calls, whose bytes XLA's GPU cost model does not report), else the arguments
and outputs, a floor; collectives from the optimized HLO. The roofline bound is
max(FLOPs / peak, bytes / HBM bandwidth) plus each collective's bytes over the link
bandwidth: a lower bound from published peaks, never a measurement. Each program also
counts its float32 products left at the target's reduced default precision.
"""

import dataclasses
import hashlib
import json
import logging
import os
import re
import time

import numpy as np

from collapse_jax import chips
from collapse_jax.plan import hlo
from collapse_jax.plan.programs import Program
from collapse_jax.plan.targets import Target

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Result:
  """What one program costs on one device of a target, per call (times `calls`)."""

  name: str
  calls: float
  used: bool
  note: str
  compile_s: float = 0.0
  memory: dict = dataclasses.field(default_factory=dict)
  collectives: dict = dataclasses.field(default_factory=dict)
  flops: float = float("nan")
  bytes: float = float("nan")
  bytes_source: str = ""
  compute_s: float = float("nan")
  memory_s: float = float("nan")
  comm_s: float = 0.0
  reduced_products: int = 0  # float32 dots/convolutions left at the default precision
  error: str = ""

  @property
  def bound_s(self) -> float:
    return max(self.compute_s, self.memory_s) + self.comm_s

  def as_dict(self) -> dict:
    return dataclasses.asdict(self) | {"bound_s": self.bound_s}


def compile_one(prog: Program):
  """(lowered, compiled, seconds) of `prog` on its abstract arguments."""
  t0 = time.perf_counter()
  lowered = prog.fn.lower(*prog.args)
  compiled = lowered.compile()
  return lowered, compiled, time.perf_counter() - t0


def memory(compiled) -> dict:
  m = compiled.memory_analysis()
  out = {k: int(getattr(m, f"{k}_size_in_bytes", 0) or 0)
         for k in ("argument", "output", "temp", "alias", "generated_code")}
  out["total"] = out["argument"] + out["output"] - out["alias"] + out["temp"]
  return out


def cost(compiled) -> dict:
  c = compiled.cost_analysis()
  c = c[0] if isinstance(c, (list, tuple)) else c
  return dict(c or {})


def cpu_flops(prog: Program) -> float:
  """FLOPs of `prog` (built on a one-device CPU mesh) from XLA's CPU cost analysis of its
  lowered module: the whole global computation, each loop body counted once."""
  return float(cost(prog.fn.lower(*prog.args)).get("flops", float("nan")))


_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _refused_bytes(message: str) -> int | None:
  """The bytes a TPU compiler says an out-of-memory program needs, or None."""
  m = re.search(r"RESOURCE_EXHAUSTED.*?required for [\w ]+\(([\d.]+)([KMGT])\)", message)
  return int(float(m.group(1)) * _UNITS[m.group(2)]) if m else None


def _bandwidth(target: Target, c: hlo.Collective) -> float:
  chip = target.chip
  if chip is None:
    return float("inf")
  return chip.host_link_bw if target.kind == "gpu" and c.group > target.per_host else chip.link_bw


def _key(prog: Program, target: Target, devices: int, peaks) -> str:
  """What a compilation depends on: the target, the loop's trip count, and the
  lowered modules of the program and its body (the same program in another config or run,
  called any number of times, hashes the same)."""
  h = hashlib.sha256(f"{target.name} {devices} {peaks} {prog.trips}".encode())
  for p in (prog, prog.unit):
    if p is not None:
      h.update(p.fn.lower(*p.args).as_text().encode())
  return h.hexdigest()[:32]


def analyze_cached(prog: Program, cpu_prog: Program, target: Target, devices: int,
                   peaks: tuple[float, float], cache_dir: str = "") -> Result:
  """`analyze`, its result kept in `cache_dir` (one JSON file per program and target) so
  that a table of many plans compiles each distinct program once."""
  if not cache_dir:
    return analyze(prog, cpu_prog, target, devices, peaks)
  path = os.path.join(cache_dir, _key(prog, target, devices, peaks) + ".json")
  if os.path.exists(path):
    with open(path) as f:
      r = Result(**json.load(f))
    # What the program is to this config, not to its compilation:
    r.name, r.calls, r.used = prog.name, prog.calls, prog.used
    if not r.memory.get("refused"):  # a refusal's note keeps the compiler's words
      r.note = prog.note
    return r
  r = analyze(prog, cpu_prog, target, devices, peaks)
  os.makedirs(cache_dir, exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(dataclasses.asdict(r), f)
  os.replace(path + ".tmp", path)
  return r


def analyze(prog: Program, cpu_prog: Program, target: Target, devices: int,
            peaks: tuple[float, float]) -> Result:
  """Compiles `prog` (and its loop body) for the target and bounds one call.

  `cpu_prog` is the same program built on a one-device CPU mesh (its FLOPs); `peaks` are
  (FLOP/s, HBM bytes/s) of one device."""
  r = Result(prog.name, prog.calls, prog.used, prog.note)
  trips = prog.trips if prog.unit is not None else 1.0
  cpu_body = cpu_prog.unit if cpu_prog.unit is not None else cpu_prog
  try:
    r.flops = cpu_flops(cpu_body) * trips / devices
    r.compute_s = r.flops / peaks[0]
    t0 = time.perf_counter()
    try:
      lowered, compiled, r.compile_s = compile_one(prog)
    except Exception as e:
      needed = _refused_bytes(str(e))
      if needed is None:
        raise
      # The compiler refuses a program beyond HBM; what it says it needs is the memory.
      r.compile_s = time.perf_counter() - t0
      r.memory = {"argument": 0, "output": 0, "temp": needed, "alias": 0,
                  "generated_code": 0, "total": needed, "refused": True}
      r.memory_s, r.bytes_source = 0.0, "unknown: the compiler refused the program"
      r.note = (r.note + "; " if r.note else "") + str(e).splitlines()[0][:200]
      return r
    r.memory = memory(compiled)
    # XLA:CPU computes float32 in float32 whatever the precision and upcasts bf16 dots, so
    # a CPU plan reads the precision each product asks for from the lowered program.
    text = lowered.as_text() if target.kind == "cpu" else compiled.as_text()
    r.reduced_products = len(hlo.reduced_products(text))
    body_compiled = compiled
    if prog.unit is not None:
      _, body_compiled, s = compile_one(prog.unit)
      r.compile_s += s
    tc = cost(body_compiled)
    if tc.get("bytes accessed", -1) > 0:
      r.bytes, r.bytes_source = tc["bytes accessed"] * trips, f"{target.kind} cost analysis"
    elif target.kind == "gpu":  # cuBLAS/cuDNN calls report no bytes: read the kernels
      r.bytes = hlo.kernel_bytes(body_compiled.as_text()) * trips
      r.bytes_source = "gpu kernels' operands and results"
    else:
      m = memory(body_compiled)
      r.bytes = (m["argument"] + m["output"]) * trips
      r.bytes_source = "arguments + outputs (a floor)"
    found = hlo.collectives(body_compiled.as_text(), devices)
    r.collectives = {k: {"count": v["count"] * trips, "bytes": v["bytes"] * trips}
                     for k, v in hlo.summary(found).items()}
    r.comm_s = trips * sum(hlo.seconds(c, _bandwidth(target, c)) for c in found)
    r.memory_s = r.bytes / peaks[1]
  except Exception as e:  # a program that does not compile is reported, never dropped
    r.error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    log.warning("%s does not compile for %s: %s", prog.name, target.name, r.error)
  return r


def measured_peaks(seconds: float = 1.0) -> tuple[float, float]:
  """(FLOP/s, bytes/s) of this host measured: a float32 matmul and an array sum, each
  timed for about `seconds` (the CPU target's stand-in for a datasheet)."""
  import jax
  import jax.numpy as jnp

  big = jnp.ones((256 * 2**20 // 4,), jnp.float32)
  read = jax.jit(jnp.sum)  # reads 256 MiB, writes nothing: DRAM bandwidth
  return chips.measured_flops(seconds), chips.rate(read, big, float(big.nbytes), seconds)


def measure(prog: Program, reps: int = 3) -> float:
  """Median seconds of one call of `prog` on its (CPU) mesh, on zero-filled inputs."""
  import jax
  import jax.numpy as jnp

  def real(x):
    if x is None:
      return None
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.device_put(jax.random.key(0), x.sharding)
    return jax.device_put(jnp.zeros(x.shape, x.dtype), x.sharding)

  compiled = prog.fn.lower(*prog.args).compile()
  times = []
  for _ in range(reps + 1):
    args = jax.tree.map(real, prog.args, is_leaf=lambda x: x is None)
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times[1:]))
