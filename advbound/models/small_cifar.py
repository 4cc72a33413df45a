"""A small CIFAR-10 network that trains to >= 75% test accuracy on 2 CPU cores in minutes.

It exists for verification runs on machines without an accelerator; the papers' CIFAR-10 model is
`WideResNet(32, 10)`. Like that model it takes raw pixels in [0, 255] and standardizes each image
inside the network.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from advbound.models import pooling
from advbound.models.wide_resnet import per_image_standardization


class ConvBN(nnx.Module):
  """conv 3x3 (no bias), batch norm, ReLU."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    self.conv = nnx.Conv(in_features, out_features, (3, 3), padding="SAME", use_bias=False,
                         rngs=rngs)
    self.bn = nnx.BatchNorm(out_features, momentum=0.9, epsilon=1e-5, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.relu(self.bn(self.conv(x)))


class SmallCifarCNN(nnx.Module):
  """Three stages of two conv-BN-ReLU layers (width, 2*width, 4*width), 2x2 max-pool after each,
  global max-pool, dense K.

  Input float32 [N, 32, 32, 3] in [0, 255]; output logits float32 [N, num_classes].
  """

  def __init__(self, *, width: int = 32, num_classes: int = 10, in_channels: int = 3,
               rngs: nnx.Rngs):
    if width < 1:
      raise ValueError(f"SmallCifarCNN width must be >= 1, got {width}")
    w = (width, 2 * width, 4 * width)
    self.layers = nnx.List([
        ConvBN(in_channels, w[0], rngs=rngs), ConvBN(w[0], w[0], rngs=rngs),
        ConvBN(w[0], w[1], rngs=rngs), ConvBN(w[1], w[1], rngs=rngs),
        ConvBN(w[1], w[2], rngs=rngs), ConvBN(w[2], w[2], rngs=rngs),
    ])
    self.head = nnx.Linear(w[2], num_classes, rngs=rngs)

  def embed(self, x: jax.Array) -> jax.Array:
    """The global max pool's output: float32 [N, 4 * width]."""
    x = per_image_standardization(x)
    for i, layer in enumerate(self.layers):
      x = layer(x)
      if i % 2 == 1:
        x = pooling.max_pool(x, (2, 2), strides=(2, 2))
    return jnp.max(x, axis=(1, 2))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.embed(x))
