"""The references users would otherwise run, timed for the benchmarks (in .venv-bench only).

  .venv-bench/bin/python benchmarks/references.py train_step --batch 128 --steps 3
  .venv-bench/bin/python benchmarks/references.py sample --batch 64 --steps 20
  .venv-bench/bin/python benchmarks/references.py entropy --data X.npy --repeats 3
  .venv-bench/bin/python benchmarks/references.py fps --data X.npy --n-select 5000

Prints one JSON line with the measurements, so the JAX benchmarks can compute ratios.
"""

import argparse
import json
import time

import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _sync():
  if DEVICE == "cuda":
    torch.cuda.synchronize()


def _autocast(dtype: str):
  """bf16 mixed precision (the JAX side's bfloat16 compute); fp32 otherwise."""
  return torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=dtype == "bfloat16")


def unet48():
  from diffusers import UNet2DModel

  return UNet2DModel(
      sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
      block_out_channels=(48, 48, 96, 96, 192, 192), norm_num_groups=16,
      down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
      up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
  )


def train_step(batch: int, steps: int, dtype: str) -> dict:
  """The authors' step: AdamW(1e-4, (0.95, 0.999)), eps MSE, grad clip 1.0."""
  model = unet48().to(DEVICE)
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6)
  abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0).to(DEVICE)
  x0 = torch.rand(batch, 3, 32, 32, device=DEVICE) * 2 - 1

  def step():
    t = torch.randint(0, 1000, (batch,), device=DEVICE)
    noise = torch.randn_like(x0)
    a = abar[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    with _autocast(dtype):
      loss = torch.nn.functional.mse_loss(model(xt, t).sample.float(), noise)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()

  step()  # warm-up
  _sync()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    step()
    _sync()
    times.append(time.perf_counter() - t0)
  n_params = sum(p.numel() for p in model.parameters())
  return {"images_per_sec": batch / sorted(times)[len(times) // 2], "params": n_params,
          "threads": torch.get_num_threads(), "device": DEVICE}


def sample(batch: int, steps: int, dtype: str) -> dict:
  """diffusers' ancestral DDPM loop (UNet2DModel + DDPMScheduler) for `steps` steps."""
  from diffusers import DDPMScheduler

  model = unet48().to(DEVICE).eval()
  scheduler = DDPMScheduler(num_train_timesteps=steps, clip_sample=True)
  scheduler.set_timesteps(steps)

  def run():
    x = torch.randn(batch, 3, 32, 32, device=DEVICE)
    with torch.no_grad(), _autocast(dtype):
      for t in scheduler.timesteps:
        eps = model(x, t).sample.float()
        x = scheduler.step(eps, t, x).prev_sample
    _sync()
    return x

  run()  # warm-up
  t, _ = _median_time(run, 1)
  return {"images_per_sec": batch / t, "seconds": t, "steps": steps, "device": DEVICE}


def _median_time(fn, repeats):
  times, out = [], None
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t0)
  return sorted(times)[len(times) // 2], out


def _kl(r, n, d, k=1):
  import numpy as np
  from scipy import special

  log_cd = d / 2 * np.log(np.pi) - special.gammaln(d / 2 + 1)
  return float(special.digamma(n) - special.digamma(k) + log_cd
               + d / n * np.sum(np.log(r.astype(np.float64) + 1e-10)))


def entropy(path: str, repeats: int) -> dict:
  """KL entropy (k=1) via scikit-learn NearestNeighbors (the authors') and faiss IndexFlatL2."""
  import numpy as np
  from sklearn.neighbors import NearestNeighbors

  x = np.load(path)
  n, d = x.shape

  def sk():
    dist, _ = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)
    return _kl(dist[:, 1], n, d)

  out = {}
  out["sklearn_s"], out["sklearn_H"] = _median_time(sk, repeats)
  try:
    import faiss
  except ImportError:
    return out

  def fa():
    index = faiss.IndexFlatL2(d)
    index.add(x)
    dist2, _ = index.search(x, 2)
    return _kl(np.sqrt(np.maximum(dist2[:, 1], 0)), n, d)

  out["faiss_s"], out["faiss_H"] = _median_time(fa, repeats)
  out["faiss_threads"] = faiss.omp_get_max_threads()
  return out


def fps(path: str, n_select: int, repeats: int) -> dict:
  """A PyTorch farthest-point loop like the authors' greedy selection."""
  import numpy as np

  x = torch.from_numpy(np.load(path))

  def run():
    selected = [0]
    mind = torch.cdist(x, x[0:1]).squeeze(1)
    for _ in range(n_select - 1):
      g = int(torch.argmax(mind))
      selected.append(g)
      mind = torch.minimum(mind, torch.cdist(x, x[g : g + 1]).squeeze(1))
    return selected

  t, sel = _median_time(run, repeats)
  return {"torch_fps_s": t, "first": sel[:10]}


def dinov2(path: str, weights: str, batch: int, repeats: int) -> dict:
  """transformers Dinov2Model (PyTorch, eval, no_grad) on preprocessed (N, 3, 224, 224)."""
  import numpy as np
  from transformers import Dinov2Model

  model = Dinov2Model.from_pretrained(weights).eval()
  x = torch.from_numpy(np.load(path))

  def run():
    with torch.no_grad():
      return torch.cat([model(pixel_values=x[i : i + batch]).pooler_output
                        for i in range(0, len(x), batch)])

  t, out = _median_time(run, repeats)
  np.save(path + ".torch.npy", out.numpy())
  return {"torch_s": t, "images_per_s": len(x) / t, "threads": torch.get_num_threads()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("what", choices=["train_step", "sample", "entropy", "fps", "dinov2"])
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--weights", default="")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--data", default="")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--n-select", type=int, default=5000)
  args = parser.parse_args()
  if args.what == "train_step":
    result = train_step(args.batch, args.steps, args.dtype)
  elif args.what == "sample":
    result = sample(args.batch, args.steps, args.dtype)
  elif args.what == "entropy":
    result = entropy(args.data, args.repeats)
  elif args.what == "dinov2":
    result = dinov2(args.data, args.weights, args.batch, args.repeats)
  else:
    result = fps(args.data, args.n_select, args.repeats)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
