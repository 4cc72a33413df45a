"""The non-residual convnet of the training-dynamics study's Appendix I:
C32-C32-MP-D0.2-C64-C64-MP-D0.2-C128-C128-MP-D0.2-L512-D0.5-L<K> (C: conv 3x3 + ReLU, MP: 2x2
max-pool, D: dropout, L: dense), ReLU throughout. `width` scales the filters (32 -> width, 2 *
width, 4 * width) and `dense` the hidden layer, for reduced runs."""

from __future__ import annotations

import jax
from flax import nnx

from advbound.models import pooling
from advbound.models.wide_resnet import per_image_standardization


class PlainCNN(nnx.Module):
  """Input float32 [N, image_size, image_size, C] on any scale (standardized per image
  inside); output logits [N, num_classes]. Dropout is active in train mode only."""

  def __init__(self, *, width: int = 32, dense: int = 512, num_classes: int = 10,
               in_channels: int = 3, image_size: int = 32, rngs: nnx.Rngs):
    if width < 1 or dense < 1 or image_size < 8:
      raise ValueError(f"PlainCNN needs width >= 1, dense >= 1 and image_size >= 8, got "
                       f"{width}, {dense}, {image_size}")
    convs, c = [], in_channels
    for out in (width, 2 * width, 4 * width):
      convs += [nnx.Conv(c, out, (3, 3), padding="SAME", rngs=rngs),
                nnx.Conv(out, out, (3, 3), padding="SAME", rngs=rngs)]
      c = out
    self.convs = nnx.List(convs)
    side = image_size // 2 // 2 // 2
    self.hidden = nnx.Linear(side * side * c, dense, rngs=rngs)
    self.head = nnx.Linear(dense, num_classes, rngs=rngs)
    self.drop_conv = nnx.Dropout(0.2, rngs=rngs)
    self.drop_dense = nnx.Dropout(0.5, rngs=rngs)

  def embed(self, x: jax.Array) -> jax.Array:
    """The hidden dense layer after its ReLU: float32 [N, dense]."""
    x = per_image_standardization(x)
    for i, conv in enumerate(self.convs):
      x = jax.nn.relu(conv(x))
      if i % 2 == 1:
        x = self.drop_conv(pooling.max_pool(x, (2, 2), strides=(2, 2)))
    return jax.nn.relu(self.hidden(x.reshape(x.shape[0], -1)))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.head(self.drop_dense(self.embed(x)))
