"""He et al.'s decision boundary classifier (their Figure 4), in Flax NNX.

sorted distances [N, M] as a 1-D signal -> conv1d(8, kernel 8, stride 4, VALID), ReLU, dropout
-> conv1d(16, 8, 4, VALID), ReLU, dropout -> flatten, append the top-1/2/3 purity [N, 3]
-> dense 32, ReLU, dropout -> dense 2 (benign, adversarial). Dropout 0.5 in training.
Sizes follow the number of directions M: 1,568 -> 391 x 8 -> 96 x 16 (1,536 + 3 features);
1,000 -> 249 x 8 -> 61 x 16 (976 + 3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def conv_length(m: int, kernel: int = 8, stride: int = 4) -> int:
  """Output length of a VALID 1-D convolution."""
  return (m - kernel) // stride + 1


class BoundaryNet(nnx.Module):
  """Input: distances float32 [N, M] (sorted, normalized), purity float32 [N, 3].
  Output: logits float32 [N, 2]."""

  def __init__(self, num_directions: int, *, rngs: nnx.Rngs, dropout: float = 0.5):
    length = conv_length(conv_length(num_directions))
    if length < 1:
      raise ValueError(f"num_directions must be at least 36 for two convolutions of kernel 8 "
                       f"and stride 4, got {num_directions}")
    self.conv1 = nnx.Conv(1, 8, (8,), strides=(4,), padding="VALID", rngs=rngs)
    self.conv2 = nnx.Conv(8, 16, (8,), strides=(4,), padding="VALID", rngs=rngs)
    self.fc1 = nnx.Linear(length * 16 + 3, 32, rngs=rngs)
    self.fc2 = nnx.Linear(32, 2, rngs=rngs)
    self.dropout = nnx.Dropout(dropout)
    self.num_directions = num_directions

  def __call__(self, distances: jax.Array, purity: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    drop = lambda h: self.dropout(h, deterministic=not train, rngs=rngs)
    h = drop(jax.nn.relu(self.conv1(distances[..., None])))
    h = drop(jax.nn.relu(self.conv2(h)))
    h = jnp.concatenate([h.reshape(h.shape[0], -1), purity], axis=1)
    h = drop(jax.nn.relu(self.fc1(h)))
    return self.fc2(h)
