"""A run's plan for a target: every program of a generation compiled ahead of time, whether
it fits, what it communicates, and the roofline bound on a generation and on the run.

`make_plan(config, target)` returns the plan as a dict (plan.json) and `markdown(plan)`
renders it (plan.md). Bounds come from published peaks and are labelled as bounds; with
`--target cpu` the measured times of the train step and the sampler step stand beside them.
"""

import json
import logging
import math
import os
import time

import jax

from collapse_jax import sharding
from collapse_jax.plan import analyze, calibration, programs, targets

log = logging.getLogger(__name__)
GiB = 2**30


def _peaks(target: targets.Target, num_devices: int) -> tuple[tuple[float, float], str]:
  if target.chip is not None:
    c = target.chip  # per chip; a device has its share (v3: two devices per chip)
    return (c.peak_flops / c.devices_per_chip, c.hbm_bw / c.devices_per_chip), c.source
  flops, bw = analyze.measured_peaks()
  return ((flops / num_devices, bw / num_devices),
          f"measured on this host: {flops / 1e9:.0f} GFLOP/s float32 matmul, "
          f"{bw / 1e9:.1f} GB/s read, shared by {num_devices} device(s)")


def _hbm(target: targets.Target) -> float:
  c = target.chip
  return c.hbm_bytes / c.devices_per_chip if c is not None else float("inf")


def _batch_limit(result: analyze.Result, batch: int, devices: int, hbm: float,
                 batch_bytes: int) -> int:
  """The largest power-of-two batch whose train step would fit, scaling the temporaries
  and the batch's own bytes linearly in the batch (the state's bytes do not change)."""
  m = result.memory
  per_example = (m["temp"] + batch_bytes) / max(batch, 1)
  fixed = m["total"] - m["temp"] - batch_bytes
  if per_example <= 0 or hbm <= fixed:
    return 0
  limit = int((hbm - fixed) / per_example)
  power = 2 ** int(math.log2(max(limit, 1)))
  return power if power >= devices else 0


def _batch_bytes(prog: programs.Program) -> int:
  batch = prog.args[1]
  return sum(math.prod(sharding.batch_sharding(x.sharding.mesh).shard_shape(x.shape))
             * x.dtype.itemsize for x in batch.values())


def _fit_train(config, target, devs, hbm, peaks, cpu_train, first, batch_bytes,
               cache_dir=""):
  """The config's mesh if its train step fits, else the smallest fsdp that does; and the
  line that says so."""
  train = first
  n = len(devs)
  resolved = dict(sharding.make_mesh(dict(config.mesh), devs).shape)
  if train.error or train.memory.get("total", 0) <= hbm:
    return resolved, train, ""
  b = int(config.train.batch_size)
  per_dev = train.memory["total"] / GiB
  chip = target.chip.name if target.chip else target.name
  mesh_try = None
  for f in (2, 4, 8, 16, 32, 64):
    if f > n or n % f:
      break
    mesh = sharding.make_mesh({"data": n // f, "fsdp": f}, devs)
    prog = programs.diffusion_programs(config, mesh)[0]
    r = analyze.analyze_cached(prog, cpu_train, target, n, peaks, cache_dir)
    if not r.error and r.memory["total"] <= hbm:
      mesh_try, train = {"data": n // f, "fsdp": f}, r
      break
  limit = _batch_limit(first, b, n, hbm, batch_bytes)
  fixes = ([f"mesh fsdp={mesh_try['fsdp']}"] if mesh_try else []) + (
      [f"batch <= {limit}"] if limit else [])
  line = (f"train step needs {per_dev:.1f} GiB per device of {hbm / GiB:.0f} GiB on {chip}"
          + (f": use {' or '.join(fixes)}" if fixes else ": no fsdp of this slice fits; use "
             "more devices or a smaller model"))
  return (mesh_try or resolved), train, line


def make_plan(config, target_name: str, measure: bool | None = None,
              cache_dir: str = "") -> dict:
  """Compiles every program of one generation for `target_name` and bounds the run
  (`cache_dir` keeps each program's analysis for the next plan that has it)."""
  t0 = time.perf_counter()
  target = targets.parse(target_name)
  devs = targets.devices(target)
  mesh = sharding.make_mesh(dict(config.mesh), devs)
  peaks, peak_source = _peaks(target, mesh.size)
  hbm = _hbm(target)
  on_cpu = target.kind == "cpu" or (target.kind == "local" and devs[0].platform == "cpu")
  progs = programs.generation_programs(config, mesh, cpu_kernels=on_cpu)
  cpu_mesh = sharding.make_mesh({"data": 1, "fsdp": 1}, jax.devices("cpu")[:1])
  cpu_progs = programs.generation_programs(config, cpu_mesh, cpu_kernels=False,
                                           round_to=mesh.size)
  results = []
  for prog, cpu_prog in zip(progs, cpu_progs, strict=True):
    log.info("compiling %s for %s", prog.name, target.name)
    r = analyze.analyze_cached(prog, cpu_prog, target, mesh.size, peaks,
                               cache_dir if target.chip is not None else "")
    log.info("%s: %.1fs compile, %.2f GiB per device, bound %.3g s per call", r.name,
             r.compile_s, r.memory.get("total", 0) / GiB, r.bound_s)
    results.append(r)
  chosen_mesh, train, fit_line = _fit_train(config, target, devs, hbm, peaks, cpu_progs[0],
                                            results[0], _batch_bytes(progs[0]), cache_dir)
  results[0] = train
  if fit_line:
    log.warning(fit_line)

  gen_s = sum(r.calls * r.bound_s for r in results if r.used and not r.error)
  b = int(config.train.batch_size)
  sampler = results[1]
  chunk = programs.chunk_size(config, mesh.size, programs.sizes(config)["pool"])
  plan = {
      "config": config.to_dict() if hasattr(config, "to_dict") else {},
      "target": target.name,
      "chip": target.chip.name if target.chip else devs[0].device_kind,
      "devices": mesh.size,
      "hosts": target.hosts,
      "mesh": chosen_mesh,
      "hbm_bytes": hbm if math.isfinite(hbm) else None,
      "peak_flops": peaks[0],
      "hbm_bw": peaks[1],
      "peak_source": peak_source,
      "fits": all(r.memory.get("total", 0) <= hbm for r in results if r.used and not r.error),
      "fit_line": fit_line,
      "programs": [r.as_dict() for r in results],
      "bound": {
          "train_images_per_s": b / train.bound_s if train.bound_s > 0 else None,
          "sample_images_per_s": chunk / sampler.bound_s if sampler.bound_s > 0 else None,
          "generation_s": gen_s,
          "run_s": gen_s * int(config.loop.generations),
          "generations": int(config.loop.generations),
      },
      "errors": [f"{r.name}: {r.error}" for r in results if r.error],
  }
  if measure is None:  # real devices are there to time
    measure = target.kind in ("cpu", "local")
  if measure:
    step = analyze.measure(progs[0])
    denoise = analyze.measure(progs[1].unit)
    plan["measured"] = {
        "train_step_s": step, "train_bound_s": train.bound_s,
        "train_bound_over_measured": train.bound_s / step,
        "sampler_step_s": denoise,
        "sampler_bound_over_measured": sampler.bound_s / progs[1].trips / denoise,
    }
  plan["plan_s"] = time.perf_counter() - t0
  return plan


def _gib(x) -> str:
  return f"{x / GiB:.2f}" if x else "0"


def _hours(s: float) -> str:
  return f"{s / 3600:.2f} h" if s >= 360 else f"{s:.1f} s"


def _expected_line(plan: dict) -> str:
  """The plan's expected times from the published calibration (plan/calibration.py): on
  accelerators whose bytes come from a cost analysis; a floor's bound says nothing."""
  b = plan["bound"]
  floors = [r["name"] for r in plan["programs"]
            if r["used"] and not r["error"] and "floor" in r["bytes_source"]]
  if not plan["target"].startswith(("tpu:", "gpu:")) or floors:
    why = f"bytes of {', '.join(floors)} are a floor" if floors else "not an accelerator"
    return f"- Expected: none ({why})."
  return (f"- Expected (an estimate, not a bound: the bound over the "
          f"{calibration.EFFICIENCY:.0%} of it that {calibration.SOURCE} reached): one "
          f"generation {_hours(calibration.expected_s(b['generation_s']))}, the run "
          f"{_hours(calibration.expected_s(b['run_s']))}; between the bound and that.")


def markdown(plan: dict) -> str:
  """plan.md: the per-program table, the fit line, the bounds and (CPU) the measurements."""
  hbm = plan["hbm_bytes"]
  lines = [
      f"# Plan: {plan['target']} ({plan['devices']} x {plan['chip']}, {plan['hosts']} "
      f"host(s)), mesh {plan['mesh']}",
      "",
      "Bounds are roofline lower bounds from peak rates "
      f"({plan['peak_source']}), not measurements: max(FLOPs / peak, bytes / HBM bandwidth)"
      " plus collectives over the link bandwidth. Memory is per device, from XLA's "
      f"compilation for the target{'' if hbm is None else f' (HBM {hbm / GiB:.0f} GiB)'}.",
      "",
      "| program | calls / gen | compile s | args GiB | out GiB | aliased GiB | temp GiB "
      "| total GiB | GFLOP / call | GB / call (from) | collectives / call | bound / call "
      "| bound / gen |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in plan["programs"]:
    if r["error"]:
      lines.append(f"| {r['name']} | {r['calls']:g} | does not compile: {r['error']} |"
                   + " |" * 10)
      continue
    m = r["memory"]
    coll = ", ".join(f"{k}: {v['count']:g}, {v['bytes'] / 1e6:.3g} MB"
                     for k, v in r["collectives"].items()) or "none"
    used = "" if r["used"] else " (not used by this config)"
    lines.append(
        f"| {r['name']}{used} | {r['calls']:g} | {r['compile_s']:.1f} | {_gib(m['argument'])} "
        f"| {_gib(m['output'])} | {_gib(m['alias'])} | {_gib(m['temp'])} | {_gib(m['total'])} "
        f"| {r['flops'] / 1e9:.4g} "
        f"| {r['bytes'] / 1e9:.4g} ({r['bytes_source']}) | {coll} | {r['bound_s']:.3g} s "
        f"| {_hours(r['calls'] * r['bound_s']) if r['used'] else '-'} |")
  b = plan["bound"]
  lines += ["", f"**Fits**: {'yes' if plan['fits'] else 'no'}."
            + (f" {plan['fit_line']}." if plan["fit_line"] else ""), ""]
  fmt = lambda x: f"{x:,.0f}" if x else "-"
  lines += [
      f"- Bound on training: {fmt(b['train_images_per_s'])} images/s; on sampling: "
      f"{fmt(b['sample_images_per_s'])} images/s (whole DDPM/DDIM chains).",
      f"- Bound on one generation: {_hours(b['generation_s'])}; on the run "
      f"({b['generations']} generations): {_hours(b['run_s'])}.",
      _expected_line(plan),
      "- Notes: " + "; ".join(f"{r['name']}: {r['note']}"
                              for r in plan["programs"] if r["note"] and not r["error"]),
      "- float32 products at the target's reduced default precision (bf16 on TPU, TF32 on "
      "GPU; the UNet's by design, collapse_jax/precision.py): "
      + (", ".join(f"{r['name']}: {r.get('reduced_products', 0)}" for r in plan["programs"]
                   if r.get("reduced_products")) or "none"),
  ]
  if "measured" in plan:
    m = plan["measured"]
    lines += [
        "", "## Measured on this host",
        f"- train step: measured {m['train_step_s']:.3f} s, bound {m['train_bound_s']:.3g} s: "
        f"bound / measured = {m['train_bound_over_measured']:.3f}",
        f"- sampler step: measured {m['sampler_step_s']:.3f} s: bound / measured = "
        f"{m['sampler_bound_over_measured']:.3f}",
    ]
  if plan["errors"]:
    lines += ["", "## Programs that do not compile", *[f"- {e}" for e in plan["errors"]]]
  lines += ["", f"Planned in {plan['plan_s']:.0f} s on {os.cpu_count()} CPU cores."]
  return "\n".join(lines) + "\n"


def write(plan: dict, workdir: str) -> tuple[str, str]:
  """plan.json and plan.md in `workdir`, each written whole (temp file, then rename)."""
  os.makedirs(workdir, exist_ok=True)
  paths = os.path.join(workdir, "plan.json"), os.path.join(workdir, "plan.md")
  for path, text in zip(paths, (json.dumps(plan, indent=1, default=str), markdown(plan)),
                        strict=True):
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)
  return paths
