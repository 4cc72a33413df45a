"""Pre-activation ResNet (He et al., "Identity Mappings in Deep Residual Networks", 2016) for
32x32 inputs: the classifier of the training-dynamics study (its Section 3: 18 layers, 64 / 128
/ 256 / 512 feature maps per level). `width` and `blocks` give reduced versions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from advbound.models.wide_resnet import per_image_standardization

_BN = dict(momentum=0.9, epsilon=1e-5)


def _conv(i: int, o: int, k: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
  return nnx.Conv(i, o, (k, k), strides=stride, padding="SAME", use_bias=False,
                  kernel_init=jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                  rngs=rngs)


class PreActBlock(nnx.Module):
  """BN, ReLU, conv 3x3 (stride), BN, ReLU, conv 3x3, + shortcut (identity, or a 1x1 conv
  with the stride on the pre-activated input when the shape changes)."""

  def __init__(self, in_filters: int, out_filters: int, stride: int, *, rngs: nnx.Rngs):
    self.bn1 = nnx.BatchNorm(in_filters, **_BN, rngs=rngs)
    self.conv1 = _conv(in_filters, out_filters, 3, stride, rngs)
    self.bn2 = nnx.BatchNorm(out_filters, **_BN, rngs=rngs)
    self.conv2 = _conv(out_filters, out_filters, 3, 1, rngs)
    self.project = (_conv(in_filters, out_filters, 1, stride, rngs)
                    if stride != 1 or in_filters != out_filters else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    a = jax.nn.relu(self.bn1(x))
    shortcut = x if self.project is None else self.project(a)
    y = self.conv1(a)
    y = self.conv2(jax.nn.relu(self.bn2(y)))
    return y + shortcut


class PreActResNet(nnx.Module):
  """conv 3x3 (width), four levels of `blocks` pre-activation blocks with width, 2, 4 and 8
  times width filters (strides 1 / 2 / 2 / 2), BN, ReLU, global average pool, dense K.
  Defaults: PreActResNet-18 with 64-128-256-512 feature maps.

  Input float32 [N, H, W, C] on any scale (standardized per image inside, like the other CIFAR
  models here); output logits [N, num_classes].
  """

  def __init__(self, *, width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2),
               num_classes: int = 10, in_channels: int = 3, rngs: nnx.Rngs):
    if width < 1 or not blocks or any(int(b) < 1 for b in blocks):
      raise ValueError(f"PreActResNet needs width >= 1 and blocks >= 1 per level, got width "
                       f"{width}, blocks {blocks}")
    self.stem = _conv(in_channels, width, 3, 1, rngs)
    layers, filters = [], width
    for level, n in enumerate(blocks):
      out = width * 2 ** level
      for i in range(int(n)):
        layers.append(PreActBlock(filters, out, 2 if level and not i else 1, rngs=rngs))
        filters = out
    self.blocks = nnx.List(layers)
    self.bn = nnx.BatchNorm(filters, **_BN, rngs=rngs)
    self.head = nnx.Linear(filters, num_classes, rngs=rngs)

  def embed(self, x: jax.Array) -> jax.Array:
    """The global average pool's output: float32 [N, width * 2^(levels - 1)]."""
    x = self.stem(per_image_standardization(x))
    for block in self.blocks:
      x = block(x)
    return jnp.mean(jax.nn.relu(self.bn(x)), axis=(1, 2))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.embed(x))
