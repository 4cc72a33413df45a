"""He et al.'s CIFAR-10 ResNet (Deep Residual Learning, 2016, Section 4.2): the point classifier
of Cao & Gong's CIFAR-10 experiments ("a ResNet", their Table 3: 90.1% clean; its depth is not
given, so it is a setting here: 20 by default, 32, 44, 56 or 110 in the paper's table)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from advbound.models.wide_resnet import per_image_standardization

_BN = dict(momentum=0.9, epsilon=1e-5)


def _conv(i: int, o: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
  return nnx.Conv(i, o, (3, 3), strides=stride, padding="SAME", use_bias=False,
                  kernel_init=jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                  rngs=rngs)


class BasicBlock(nnx.Module):
  """conv 3x3 (stride), BN, ReLU, conv 3x3, BN, + shortcut, ReLU. A shortcut that changes shape
  subsamples by the stride and zero-pads the new channels (the paper's option A)."""

  def __init__(self, in_filters: int, out_filters: int, stride: int, *, rngs: nnx.Rngs):
    self.in_filters, self.out_filters, self.stride = in_filters, out_filters, stride
    self.conv1, self.bn1 = _conv(in_filters, out_filters, stride, rngs), nnx.BatchNorm(
        out_filters, **_BN, rngs=rngs)
    self.conv2, self.bn2 = _conv(out_filters, out_filters, 1, rngs), nnx.BatchNorm(
        out_filters, **_BN, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    shortcut = x
    if self.stride != 1 or self.in_filters != self.out_filters:
      shortcut = x[:, ::self.stride, ::self.stride]
      extra = self.out_filters - self.in_filters
      shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
    return jax.nn.relu(y + shortcut)


class ResNetCifar(nnx.Module):
  """ResNet-depth for 32x32 inputs: conv 3x3x16, BN, ReLU, three stages of (depth - 2) / 6 basic
  blocks with 16 / 32 / 64 filters (strides 1 / 2 / 2), global average pool, dense K.

  Input float32 [N, 32, 32, C] in [0, 255] (standardized per image inside, like the other CIFAR
  models here); output logits [N, num_classes].
  """

  def __init__(self, depth: int = 20, *, num_classes: int = 10, in_channels: int = 3,
               rngs: nnx.Rngs):
    if depth < 8 or (depth - 2) % 6:
      raise ValueError(f"ResNetCifar depth must be 6n+2 with n >= 1, got {depth}")
    n = (depth - 2) // 6
    self.stem, self.bn = _conv(in_channels, 16, 1, rngs), nnx.BatchNorm(16, **_BN, rngs=rngs)
    blocks, filters = [], 16
    for out, stride in ((16, 1), (32, 2), (64, 2)):
      for i in range(n):
        blocks.append(BasicBlock(filters, out, stride if i == 0 else 1, rngs=rngs))
        filters = out
    self.blocks = nnx.List(blocks)
    self.head = nnx.Linear(64, num_classes, rngs=rngs)

  def embed(self, x: jax.Array) -> jax.Array:
    """The global average pool's output: float32 [N, channels of the last stage]."""
    x = jax.nn.relu(self.bn(self.stem(per_image_standardization(x))))
    for block in self.blocks:
      x = block(x)
    return jnp.mean(x, axis=(1, 2))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.embed(x))
