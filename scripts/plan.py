"""Compile one generation of the loop for an accelerator target, ahead of time, and plan it.

  python scripts/plan.py --config configs/cifar10.py:greedy --target tpu:v5e:4x4 \
      --workdir runs/plan_v5e_16 [--config.train.batch_size=1024]

Targets: tpu:<v4|v5e|v5p|v6e>:<topology>, gpu:<h100|h200|a100>:<hosts>x<gpus>, cpu, local.
TPU and GPU targets need XLA's compilers (`make aot-setup`, then .venv-aot/bin/python);
nothing runs on a device and no data or weights are read. Writes plan.md and plan.json.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from collapse_jax import cli  # noqa: E402
from collapse_jax.plan import report  # noqa: E402

_TARGET = flags.DEFINE_string("target", "cpu", "tpu:v5e:4x4, gpu:h100:1x8, cpu, local, ...")


def plan(config, workdir: str, overwrite: bool) -> None:
  del overwrite
  result = report.make_plan(config, _TARGET.value)
  js, md = report.write(result, workdir)
  print(report.markdown(result))
  print(f"wrote {md} and {js}")


if __name__ == "__main__":
  cli.run(plan)
