"""The scaling table (docs/scaling.md, the README's): plans of the paper's settings on many
targets, each plan kept as it finishes (a rerun resumes) and every distinct program
compiled once (the plans share a cache of analyses)."""

import json
import logging
import os

from collapse_jax.errors import ConfigError
from collapse_jax.plan import calibration, report
from collapse_jax.study import sweep

log = logging.getLogger(__name__)

# (setting, config file, variant, overrides): the paper's CIFAR-10 experiment (UNet48, bf16,
# N = 32,768, pool 2N, DDPM-1000, greedy selection in DINOv2 space), FFHQ at 32x32, and
# UNet128 at a batch that needs fsdp.
SETTINGS = (
    ("cifar10 b128", "configs/cifar10.py", "greedy,dino", {}),
    ("cifar10 b1024", "configs/cifar10.py", "greedy,dino", {"train.batch_size": 1024}),
    ("ffhq32 b128", "configs/ffhq.py", "greedy,dino", {"loop.n_train": 65_536}),
    ("unet128 cifar10 b2048", "configs/cifar10.py", "greedy,dino",
     {"train.batch_size": 2048, "model.channels": (128, 128, 256, 256, 512, 512)}),
    # 1984, 2112 and 2304 images per v5e chip, towards the edge of its 16 GiB, where only
    # fsdp's split of the state makes room.
    ("unet128 cifar10 b15872", "configs/cifar10.py", "greedy,dino",
     {"train.batch_size": 15_872, "model.channels": (128, 128, 256, 256, 512, 512)}),
    ("unet128 cifar10 b16896", "configs/cifar10.py", "greedy,dino",
     {"train.batch_size": 16_896, "model.channels": (128, 128, 256, 256, 512, 512)}),
    ("unet128 cifar10 b18432", "configs/cifar10.py", "greedy,dino",
     {"train.batch_size": 18_432, "model.channels": (128, 128, 256, 256, 512, 512)}),
)
TARGETS = ("tpu:v5e:2x4", "tpu:v5e:8x8", "tpu:v5e:16x16", "tpu:v5p:2x2x1", "tpu:v6e:2x4",
           "gpu:h100:1x8", "gpu:h200:1x8", "gpu:h100:2x8")
ARMS = 3


def load_config(path: str, variant: str, overrides: dict):
  """A config file's get_config(variant), as the scripts load it, with dotted overrides
  given as values (not flag strings)."""
  config = sweep.load_config(f"{path}:{variant}")
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def run(workdir: str, settings=SETTINGS, targets=TARGETS, plan_missing: bool = True) -> list[dict]:
  """Every (setting, target) plan, from workdir/<setting>/<target>/plan.json when there
  (else planned now, or listed as not planned yet without `plan_missing`)."""
  rows = []
  for name, path, variant, overrides in settings:
    for target in targets:
      out = os.path.join(workdir, name.replace(" ", "_"),
                         target.replace(":", "_"))
      done = os.path.join(out, "plan.json")
      if os.path.exists(done):
        with open(done) as f:
          plan = json.load(f)
      elif not plan_missing:
        continue
      else:
        log.info("planning %s on %s", name, target)
        try:
          plan = report.make_plan(load_config(path, variant, overrides), target,
                                  cache_dir=os.path.join(workdir, "cache"))
        except ConfigError as e:
          plan = {"target": target, "refused": str(e)}
          os.makedirs(out, exist_ok=True)
          with open(done, "w") as f:
            json.dump(plan, f)
        else:
          report.write(plan, out)
      rows.append({"setting": name, **plan})
  return rows


def _rate(x) -> str:
  return f"{x:,.0f}" if x else "-"


def markdown(rows: list[dict]) -> str:
  """One row per (setting, target): fits, mesh, train-step memory and collectives, the
  bounds on images/s, hours per generation and for the paper's 8 generations x 3 arms
  (each arm costed as the greedy one, whose pool is 2N: an overestimate for vanilla), and
  the expected hours (the bounds over the share of its bound Ho et al.'s DDPM reached,
  plan/calibration.py: an estimate, labelled so), and where the train step's bytes come
  from: the TPU/CPU compiler's cost analysis, the GPU kernels of the optimized HLO, or the
  arguments and outputs (a floor: such a row prints no hours)."""
  lines = [
      "| setting | target | fits | mesh | train step GiB / device | train step collectives "
      "| train images/s (bound) | sample images/s (bound) | h / generation (bound) "
      f"| h, 8 gens x {ARMS} arms (bound) | h, 8 gens x {ARMS} arms (expected) | bytes from "
      "| planned in |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    if "refused" in r:
      lines.append(f"| {r['setting']} | {r['target']} | no: {r['refused']} |" + " |" * 10)
      continue
    train = r["programs"][0]
    coll = ", ".join(f"{k} {v['bytes'] / 2**20:.0f} MiB" for k, v in
                     train["collectives"].items()) or "none"
    fits = "yes" if r["fits"] else f"no: {r['fit_line']}" if r["fit_line"] else "no"
    if r["fits"] and r["fit_line"]:
      fits = f"with {r['mesh']}: {r['fit_line']}"
    b = r["bound"]
    gen_h = b["generation_s"] / 3600
    fsdp = r["mesh"].get("fsdp", 1)
    data = r["mesh"]["data"] if r["mesh"]["data"] != -1 else r["devices"] // fsdp
    source = train["bytes_source"]
    floor = "floor" in source
    source = "floor" if floor else "GPU kernels" if "kernels" in source else "compiler"
    hours = ("- (floor)", "-") if floor else (
        f"{gen_h:.2f}", f"{gen_h * 8 * ARMS:.1f}")
    expected = "-" if floor else f"{calibration.expected_s(gen_h) * 8 * ARMS:.1f}"
    lines.append(
        f"| {r['setting']} | {r['target']} | {fits} | {data}x{fsdp} "
        f"| {train['memory'].get('total', 0) / 2**30:.2f} | {coll} "
        f"| {_rate(b['train_images_per_s'])} | {_rate(b['sample_images_per_s'])} "
        f"| {hours[0]} | {hours[1]} | {expected} | {source} | {r['plan_s']:.0f} s |")
  return "\n".join(lines) + "\n"


BEGIN, END = "<!-- scaling table: begin (scripts/scaling.py) -->", "<!-- scaling table: end -->"


def replace_between_markers(path: str, text: str) -> None:
  """Puts `text` between the scaling-table markers of `path` (appended with them if absent)."""
  old = open(path).read() if os.path.exists(path) else ""
  block = f"{BEGIN}\n{text}{END}"
  if BEGIN in old and END in old:
    new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END):]
  else:
    new = old + ("\n" if old else "") + block + "\n"
  with open(path + ".tmp", "w") as f:
    f.write(new)
  os.replace(path + ".tmp", path)
