"""Metzen et al.'s adversarial-example detector ("On Detecting Adversarial Perturbations", ICLR
2017), applied to the input as in the training-dynamics study: conv 3x3x96, ReLU, max-pool 2,
conv 3x3x192, ReLU, max-pool 2, conv 3x3x192, ReLU, conv 1x1x2, global average pool."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from advbound.models import pooling


class MetzenDetector(nnx.Module):
  """Input float32 [N, H, W, C] (any scale the caller standardizes); output logits [N, 2]
  (class 1: adversarial)."""

  def __init__(self, *, in_channels: int = 3, features: tuple[int, int, int] = (96, 192, 192),
               rngs: nnx.Rngs):
    """features: the three 3x3 convolutions' widths (Metzen et al.'s 96, 192, 192; smaller
    for reduced runs)."""
    a, b, c = (int(f) for f in features)
    self.conv1 = nnx.Conv(in_channels, a, (3, 3), padding="SAME", rngs=rngs)
    self.conv2 = nnx.Conv(a, b, (3, 3), padding="SAME", rngs=rngs)
    self.conv3 = nnx.Conv(b, c, (3, 3), padding="SAME", rngs=rngs)
    self.conv4 = nnx.Conv(c, 2, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = pooling.max_pool(jax.nn.relu(self.conv1(x)), (2, 2), strides=(2, 2))
    x = pooling.max_pool(jax.nn.relu(self.conv2(x)), (2, 2), strides=(2, 2))
    x = self.conv4(jax.nn.relu(self.conv3(x)))
    return jnp.mean(x, axis=(1, 2))
