"""Pretrained feature encoders (DINOv2, the FID Inception-v3) and batched extraction."""
