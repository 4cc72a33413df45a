"""Madry et al.'s CIFAR-10 wide residual network (He et al.'s CIFAR-10 model).

WRN-32-10 is `WideResNet(32, 10)`: a 3x3x16 stem, three stages of (depth - 2) / 6 pre-activation
residual units with 16w / 32w / 64w filters and strides 1 / 2 / 2, leaky ReLU (slope 0.1), batch
norm (momentum 0.9, epsilon 1e-3, as tf.contrib's batch_norm in the released model), global
average pooling and a dense layer. Inputs are raw pixels in [0, 255]; per-image standardization
happens inside the model. Shortcuts that change width average-pool by the stride and zero-pad the
channels, as in the released model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

_BN = dict(momentum=0.9, epsilon=1e-3)


def per_image_standardization(x: jax.Array) -> jax.Array:
  """tf.image.per_image_standardization over each image of [N, H, W, C]: zero mean, unit std.

  The std is floored at 1/sqrt(H*W*C) so a constant image does not divide by zero.
  """
  n = x.shape[1] * x.shape[2] * x.shape[3]
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  std = jnp.std(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) / jnp.maximum(std, 1.0 / jnp.sqrt(float(n)))


def _leaky_relu(x: jax.Array) -> jax.Array:
  return jax.nn.leaky_relu(x, negative_slope=0.1)


def _conv_init():
  # Released model: normal with stddev sqrt(2 / (k * k * out_filters)).
  return jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class ResidualUnit(nnx.Module):
  """Pre-activation unit: BN, leaky ReLU, conv 3x3 (stride), BN, leaky ReLU, conv 3x3, + shortcut."""

  def __init__(self, in_filters: int, out_filters: int, stride: int,
               activate_before_residual: bool, *, rngs: nnx.Rngs):
    if (out_filters - in_filters) % 2:
      raise ValueError(f"filter change {in_filters} -> {out_filters} must be even")
    self.in_filters, self.out_filters, self.stride = in_filters, out_filters, stride
    self.activate_before_residual = activate_before_residual
    self.bn1 = nnx.BatchNorm(in_filters, **_BN, rngs=rngs)
    self.conv1 = nnx.Conv(in_filters, out_filters, (3, 3), strides=stride, padding="SAME",
                          use_bias=False, kernel_init=_conv_init(), rngs=rngs)
    self.bn2 = nnx.BatchNorm(out_filters, **_BN, rngs=rngs)
    self.conv2 = nnx.Conv(out_filters, out_filters, (3, 3), padding="SAME", use_bias=False,
                          kernel_init=_conv_init(), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    activated = _leaky_relu(self.bn1(x))
    shortcut = activated if self.activate_before_residual else x
    y = self.conv1(activated)
    y = self.conv2(_leaky_relu(self.bn2(y)))
    if self.in_filters != self.out_filters:
      s = self.stride
      shortcut = nnx.avg_pool(shortcut, (s, s), strides=(s, s), padding="VALID")
      pad = (self.out_filters - self.in_filters) // 2
      shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (pad, pad)))
    return y + shortcut


class WideResNet(nnx.Module):
  """WRN-depth-width. Input float32 [N, H, W, C] in [0, 255]; output logits [N, num_classes]."""

  def __init__(self, depth: int, width: int, *, num_classes: int = 10, in_channels: int = 3,
               rngs: nnx.Rngs):
    if depth < 8 or (depth - 2) % 6:
      raise ValueError(f"WideResNet depth must be 6n+2 with n >= 1, got {depth}")
    if width < 1:
      raise ValueError(f"WideResNet width must be >= 1, got {width}")
    units = (depth - 2) // 6
    filters = [16, 16 * width, 32 * width, 64 * width]
    self.stem = nnx.Conv(in_channels, 16, (3, 3), padding="SAME", use_bias=False,
                         kernel_init=_conv_init(), rngs=rngs)
    blocks = []
    for stage, stride in enumerate((1, 2, 2)):
      for i in range(units):
        blocks.append(ResidualUnit(
            filters[stage] if i == 0 else filters[stage + 1], filters[stage + 1],
            stride if i == 0 else 1, activate_before_residual=(stage == 0 and i == 0),
            rngs=rngs))
    self.blocks = nnx.List(blocks)
    self.bn = nnx.BatchNorm(filters[3], **_BN, rngs=rngs)
    self.head = nnx.Linear(filters[3], num_classes, rngs=rngs)

  def embed(self, x: jax.Array) -> jax.Array:
    """The global average pool's output: float32 [N, 64 * width] (the blind-spot paper's
    CIFAR-10 feature extractor)."""
    x = self.stem(per_image_standardization(x))
    for block in self.blocks:
      x = block(x)
    x = _leaky_relu(self.bn(x))
    return jnp.mean(x, axis=(1, 2))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.embed(x))
