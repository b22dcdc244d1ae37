"""Ahead-of-time plans: the loop's programs compiled for TPU/GPU targets without the chips."""
