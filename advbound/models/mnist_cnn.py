"""Madry et al.'s MNIST network (the model of He et al.'s MNIST experiments)."""

from __future__ import annotations

import jax
from flax import nnx

from advbound.models import pooling


class MnistCNN(nnx.Module):
  """conv 5x5x32, ReLU, maxpool 2, conv 5x5x64, ReLU, maxpool 2, dense 1024, ReLU, dense K.

  Input: float32 [N, 28, 28, 1] in [0, 1]. Output: logits float32 [N, num_classes].
  SAME padding throughout, as in Madry et al.'s released model.
  """

  def __init__(self, *, num_classes: int = 10, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, 32, (5, 5), padding="SAME", rngs=rngs)
    self.conv2 = nnx.Conv(32, 64, (5, 5), padding="SAME", rngs=rngs)
    self.fc1 = nnx.Linear(7 * 7 * 64, 1024, rngs=rngs)
    self.fc2 = nnx.Linear(1024, num_classes, rngs=rngs)

  def embed(self, x: jax.Array) -> jax.Array:
    """The first dense layer's output after its ReLU (Madry et al.'s h_fc1): float32 [N, 1024].

    The blind-spot paper's feature extractor for MNIST and Fashion-MNIST."""
    x = pooling.max_pool(jax.nn.relu(self.conv1(x)), (2, 2), strides=(2, 2))
    x = pooling.max_pool(jax.nn.relu(self.conv2(x)), (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    return jax.nn.relu(self.fc1(x))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(self.embed(x))
