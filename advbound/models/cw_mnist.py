"""Carlini & Wagner's MNIST network (nn_robust_attacks, train_models.py), the point classifier of
Cao & Gong's MNIST experiments."""

from __future__ import annotations

import jax
from flax import nnx

from advbound.models import pooling


class CarliniWagnerMnist(nnx.Module):
  """conv 3x3x32, ReLU, conv 3x3x32, ReLU, maxpool 2, conv 3x3x64, ReLU, conv 3x3x64, ReLU,
  maxpool 2, dense 200, ReLU, dropout 0.5, dense 200, ReLU, dense K.

  VALID padding as in the released Keras model (28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4, so the
  flattened features are 4 x 4 x 64 = 1,024). The released code has a ReLU after the second
  dense 200 too, which Cao & Gong's description leaves out; we follow the code. Dropout is
  active in train mode only (`model.train()` / `model.eval()`).

  Input: float32 [N, 28, 28, 1] in [0, 1]. Output: logits float32 [N, num_classes].
  """

  def __init__(self, *, num_classes: int = 10, dropout: float = 0.5, rngs: nnx.Rngs):
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    conv = lambda i, o: nnx.Conv(i, o, (3, 3), padding="VALID", rngs=rngs)
    self.conv1, self.conv2 = conv(1, 32), conv(32, 32)
    self.conv3, self.conv4 = conv(32, 64), conv(64, 64)
    self.fc1 = nnx.Linear(4 * 4 * 64, 200, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.fc2 = nnx.Linear(200, 200, rngs=rngs)
    self.fc3 = nnx.Linear(200, num_classes, rngs=rngs)

  def embed(self, x: jax.Array) -> jax.Array:
    """The first dense layer's output after its ReLU (before dropout): float32 [N, 200]."""
    relu = jax.nn.relu
    x = relu(self.conv2(relu(self.conv1(x))))
    x = pooling.max_pool(x, (2, 2), strides=(2, 2))
    x = relu(self.conv4(relu(self.conv3(x))))
    x = pooling.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    return relu(self.fc1(x))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc3(jax.nn.relu(self.fc2(self.dropout(self.embed(x)))))
