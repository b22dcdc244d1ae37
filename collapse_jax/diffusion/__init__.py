"""The one-model DDPM job: noise schedule, loss, samplers, train state and step, the resumable
training loop, sharded generation."""
