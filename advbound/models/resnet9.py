"""Page's ResNet-9 for CIFAR-10 ("How to train your ResNet", 2018; the DAWNBench network that
reaches 94% test accuracy in 24 epochs): the natural model of the fast CIFAR-10 recipe
(configs/cifar_fast.py).

prep: conv 3x3 (w), BN, ReLU; layer1: conv (2w), BN, ReLU, max pool 2, plus a residual of two
conv-BN-ReLU (2w); layer2: conv (4w), BN, ReLU, max pool 2; layer3: conv (8w), BN, ReLU, max
pool 2, plus a residual of two conv-BN-ReLU (8w); global max pool, dense K without bias, logits
scaled by 0.125. w = 64 is Page's network (6.6M parameters).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from advbound.models import pooling
from advbound.models.wide_resnet import per_image_standardization

# PyTorch's defaults, which Page's recipe was tuned with: BN momentum 0.1 (0.9 here, the
# running average's weight), epsilon 1e-5; kaiming-uniform(a = sqrt(5)) conv and dense weights.
_BN = dict(momentum=0.9, epsilon=1e-5)
_TORCH_INIT = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class ConvBN(nnx.Module):
  """conv 3x3 (no bias), BN, ReLU, then a max pool of 2 when `pool`."""

  def __init__(self, in_filters: int, out_filters: int, *, pool: bool = False,
               rngs: nnx.Rngs):
    self.conv = nnx.Conv(in_filters, out_filters, (3, 3), padding="SAME", use_bias=False,
                         kernel_init=_TORCH_INIT, rngs=rngs)
    self.bn = nnx.BatchNorm(out_filters, **_BN, rngs=rngs)
    self.pool = pool

  def __call__(self, x: jax.Array) -> jax.Array:
    x = jax.nn.relu(self.bn(self.conv(x)))
    return pooling.max_pool(x, (2, 2), strides=(2, 2)) if self.pool else x


class ResNet9(nnx.Module):
  """Input float32 [N, H, W, C] on any scale (standardized per image inside, like the other
  CIFAR models here); output logits [N, num_classes]."""

  def __init__(self, *, width: int = 64, num_classes: int = 10, in_channels: int = 3,
               logit_scale: float = 0.125, rngs: nnx.Rngs):
    if width < 1:
      raise ValueError(f"ResNet9 width must be >= 1, got {width}")
    w = int(width)
    self.prep = ConvBN(in_channels, w, rngs=rngs)
    self.layer1 = ConvBN(w, 2 * w, pool=True, rngs=rngs)
    self.res1 = nnx.List([ConvBN(2 * w, 2 * w, rngs=rngs) for _ in range(2)])
    self.layer2 = ConvBN(2 * w, 4 * w, pool=True, rngs=rngs)
    self.layer3 = ConvBN(4 * w, 8 * w, pool=True, rngs=rngs)
    self.res3 = nnx.List([ConvBN(8 * w, 8 * w, rngs=rngs) for _ in range(2)])
    self.head = nnx.Linear(8 * w, num_classes, use_bias=False, kernel_init=_TORCH_INIT,
                           rngs=rngs)
    self.logit_scale = float(logit_scale)

  def embed(self, x: jax.Array) -> jax.Array:
    """The global max pool's output: float32 [N, 8 * width]."""
    x = self.layer1(self.prep(per_image_standardization(x)))
    x = x + self.res1[1](self.res1[0](x))
    x = self.layer3(self.layer2(x))
    x = x + self.res3[1](self.res3[0](x))
    return jnp.max(x, axis=(1, 2))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.embed(x)) * self.logit_scale
