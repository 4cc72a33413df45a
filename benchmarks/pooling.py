"""Max pooling: ours (`models.pooling.window_max`: reduce_window's forward, a custom JVP whose
gradient is an elementwise select) against flax's `nnx.max_pool` (reduce_window, differentiated
into select-and-scatter) on the same networks, weights and inputs, in one run:

  python -m benchmarks.pooling

- forward: region votes (`region.classify`) of 300 images x 100 samples at batch 8,192, the
  radius search's unit in configs/region_defense_quickstart.py, with the C&W MNIST network;
- gradient: the input gradient of the cross-entropy on 50 images, 20 times, with the C&W MNIST
  network and the MNIST CNN.

Prints the warm seconds of each (a first call compiles) and the ratio flax / ours (> 1: ours is
faster).
"""

import contextlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from advbound import models, region
from advbound.models import pooling


@contextlib.contextmanager
def _flax_pooling():
  """The networks' pooling replaced by flax's reduce_window while tracing. jit's caches are
  cleared on the way in and out: models of one architecture share compiled programs
  (`models.StaticPartial`), so a cached program of the other pooling would be reused."""
  ours = pooling.max_pool
  pooling.max_pool = lambda x, window, strides=None, padding="VALID": nnx.max_pool(
      x, tuple(window), strides=strides, padding=padding)
  jax.clear_caches()
  try:
    yield
  finally:
    pooling.max_pool = ours
    jax.clear_caches()


def _warm(run, repeats: int = 2) -> float:
  jax.block_until_ready(run())  # compiles
  t0 = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(run())
  return (time.perf_counter() - t0) / repeats


def _votes(name: str, x: np.ndarray) -> float:
  fn = models.as_logits_fn(models.build(name, rngs=nnx.Rngs(0)))
  return _warm(lambda: region.classify(fn, jax.random.key(0), x, radius=0.3, num_samples=100,
                                       bounds=(0.0, 1.0), batch_size=8192)[0])


def _gradient(name: str, x: np.ndarray, y: np.ndarray) -> float:
  fn = models.as_logits_fn(models.build(name, rngs=nnx.Rngs(0)))

  @jax.jit
  def grad(x):
    return jax.grad(lambda x: jnp.sum(
        -jax.nn.log_softmax(fn(x))[jnp.arange(len(y)), y]))(x)

  def twenty():
    out = None
    for _ in range(20):
      out = grad(x)
    return out

  return _warm(twenty)


def main():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(300, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, 50).astype(np.int32)
  ours = _votes("cw_mnist", x)
  with _flax_pooling():
    ref = _votes("cw_mnist", x)
  print(f"region votes, 300 x 100 samples, cw_mnist: ours {ours:.2f} s, flax {ref:.2f} s, "
        f"flax / ours {ref / ours:.2f}", flush=True)
  for name in ("cw_mnist", "mnist_cnn"):
    ours = _gradient(name, x[:50], y)
    with _flax_pooling():
      ref = _gradient(name, x[:50], y)
    print(f"input gradient x 20, 50 images, {name}: ours {ours:.2f} s, flax {ref:.2f} s, "
          f"flax / ours {ref / ours:.2f}", flush=True)


if __name__ == "__main__":
  main()
