"""DDPM noise schedule, loss and samplers."""
