"""Helpers shared by the training tests (loop, step, variants): random tiny data sets and a
model's weights as numpy arrays."""

import jax
import numpy as np
from flax import nnx

from advbound import data


def tiny_data(name="mnist", n=64, seed=0):
  """A Dataset of `n` random uint8 images [n, H, W, C] of data set `name`'s shape, labels
  0..9 cycled, seeded."""
  info = data.INFO[name]
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (n,) + info.image_shape, dtype=np.uint8)
  return data._to_dataset(x, np.arange(n) % 10, info, "train")  # pylint: disable=protected-access


def params(model):
  """The model's whole state (parameters, batch statistics) as a tree of numpy arrays."""
  return jax.tree.map(np.asarray, nnx.state(model))
