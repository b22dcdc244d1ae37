"""Random-weight checkpoints in the public formats (HF DINOv2 directory, pytorch-fid .pth)."""

import torch
from transformers import Dinov2Config, Dinov2Model

from tests.torch_fid_inception import randomized

DINOV2_SMALL = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                    patch_size=14, image_size=518, mlp_ratio=4)
DINOV2_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=14,
                   image_size=56, mlp_ratio=2)


def dinov2_dir(path: str, shape: dict = DINOV2_SMALL, seed: int = 0) -> Dinov2Model:
  """Saves a transformers Dinov2Model with random weights (layer scales, norms and biases
  moved off their init too) at `path` as `save_pretrained` does; returns it in eval mode."""
  torch.manual_seed(seed)
  model = Dinov2Model(Dinov2Config(layerscale_value=1.0, **shape)).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.02 * torch.randn_like(p))
  model.save_pretrained(path)
  return model


def inception_pth(path: str, seed: int = 0):
  """Saves the FID Inception with random weights as a state-dict .pth; returns the net."""
  net = randomized(seed)
  torch.save(net.state_dict(), path)
  return net
