"""The precision of every product whose result is a distance, a statistic or an embedding.

JAX's default for a float32 `dot_general` or convolution is the backend's fastest: one
bfloat16 pass on TPU, TF32 on A100/H100; only XLA:CPU computes it in float32. Squared
distances from ||q||^2 + ||x||^2 - 2 q.x keep ~3 significant digits in bfloat16, so
nearest neighbours, greedy picks, entropies and generalization scores would depend on the
chip. These helpers state the precision instead:

- float32 operands: `Precision.HIGHEST` (float32 on GPU, six bfloat16 passes on TPU).
  bf16x3 (`BF16_BF16_F32_X3`) was considered: its ~2^-16 relative error on q.x is ~1% of a
  DINOv2 nearest-neighbour distance squared, which is what we set out to remove.
- 16-bit float operands (bfloat16 features, uint8 pixels cast to bfloat16, which holds
  0..255 exactly): the backend's default with float32 accumulation, since the product of
  two 16-bit floats is exact in float32.

The UNet's training and sampling do not use these: they keep the config's dtype and the
backend's speed.
"""

import jax.numpy as jnp
from jax import lax

EXACT = lax.Precision.HIGHEST


def for_dtype(dtype) -> lax.Precision | None:
  """The precision for products of `dtype` operands: HIGHEST for 32-bit and wider floats,
  None (the backend's default, exact with float32 accumulation) for 16-bit floats."""
  dtype = jnp.dtype(dtype)
  return None if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize <= 2 else EXACT


def dot_f32(a, b, contracting: tuple[tuple[int, ...], tuple[int, ...]]):
  """`lax.dot_general` of a and b over `contracting` dims (no batch dims), float32
  accumulation, at the precision their dtypes need (`for_dtype` of the wider one). 8-bit
  integers (uint8 pixels) enter as bfloat16, which holds every one exactly."""
  a, b = (v.astype(jnp.bfloat16) if jnp.issubdtype(v.dtype, jnp.integer)
          and v.dtype.itemsize == 1 else v for v in (a, b))
  wide = jnp.promote_types(a.dtype, b.dtype)
  return lax.dot_general(a, b, (contracting, ((), ())), precision=for_dtype(wide),
                         preferred_element_type=jnp.float32)
