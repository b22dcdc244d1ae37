"""Random-weight checkpoints made by PyTorch in the public formats (HF DINOv2 directory,
pytorch-fid .pth), for the parity tests; the rest of the suite uses tests/encoder_weights.py."""

import torch
from transformers import Dinov2Config, Dinov2Model

from tests.encoder_weights import DINOV2_SMALL
from tests.torch_fid_inception import randomized


def dinov2_torch_dir(path: str, shape: dict = DINOV2_SMALL, seed: int = 0) -> Dinov2Model:
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
