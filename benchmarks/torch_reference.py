"""PyTorch references timed for the benchmarks (run in .venv-bench, never imported by the package).

  .venv-bench/bin/python benchmarks/torch_reference.py train_step --batch 128 --steps 3

Prints one JSON line with the measured rate, so the JAX benchmark can compute ratios.
"""

import argparse
import json
import time

import torch


def unet48():
  from diffusers import UNet2DModel

  return UNet2DModel(
      sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
      block_out_channels=(48, 48, 96, 96, 192, 192), norm_num_groups=16,
      down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
      up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
  )


def train_step(batch: int, steps: int) -> dict:
  """The authors' step: AdamW(1e-4, (0.95, 0.999)), eps MSE, grad clip 1.0, fp32 on CPU."""
  model = unet48()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6)
  abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
  x0 = torch.rand(batch, 3, 32, 32) * 2 - 1

  def step():
    t = torch.randint(0, 1000, (batch,))
    noise = torch.randn_like(x0)
    a = abar[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    loss = torch.nn.functional.mse_loss(model(xt, t).sample, noise)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()

  step()  # warm-up
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
  n_params = sum(p.numel() for p in model.parameters())
  return {"images_per_sec": batch / sorted(times)[len(times) // 2], "params": n_params,
          "threads": torch.get_num_threads()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("what", choices=["train_step"])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  print(json.dumps(train_step(args.batch, args.steps)))


if __name__ == "__main__":
  main()
