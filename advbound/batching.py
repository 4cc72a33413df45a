"""Fixed-shape chunking: apply a jitted function to a large batch under a memory budget.

The last chunk is padded to the chunk size (by repeating its final row), so the function compiles
once per chunk shape; padded rows are dropped from the result.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging


def map_chunks(fn: Callable[..., Any], *arrays, chunk_size: int, desc: str | None = None) -> Any:
  """Returns fn(*arrays) computed chunk by chunk along the leading axis.

  Args:
    fn: maps arrays with leading size `chunk_size` to a pytree of arrays with that leading size.
    *arrays: arrays sharing the leading size N.
    chunk_size: rows per call (> 0).
    desc: if given, progress (chunks done, rows per second, ETA) is logged under this name.

  Returns:
    The pytree of fn's outputs concatenated over chunks, leading size N (numpy arrays).
  """
  if chunk_size <= 0:
    raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
  n = int(np.shape(arrays[0])[0])
  if any(int(np.shape(a)[0]) != n for a in arrays):
    raise ValueError(f"arrays have different leading sizes {[np.shape(a)[0] for a in arrays]}")
  if n == 0:
    raise ValueError("map_chunks needs at least one row")
  size = min(chunk_size, n)
  outputs = []
  num_chunks = -(-n // size)
  t0 = time.time()
  for i, start in enumerate(range(0, n, size)):
    stop = min(start + size, n)
    chunk = [_pad_rows(jnp.asarray(a[start:stop]), size) for a in arrays]
    out = fn(*chunk)
    outputs.append(jax.tree.map(lambda o, k=stop - start: np.asarray(o[:k]), out))
    if desc and num_chunks > 1:
      elapsed = time.time() - t0
      logging.info("%s: chunk %d/%d, %.1f rows/s, ETA %.0f s", desc, i + 1, num_chunks,
                   stop / max(elapsed, 1e-9), elapsed / stop * (n - stop))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


def _pad_rows(a: jax.Array, size: int) -> jax.Array:
  """Pads [k, ...] to [size, ...] by repeating the last row."""
  k = a.shape[0]
  if k == size:
    return a
  return jnp.concatenate([a, jnp.repeat(a[-1:], size - k, axis=0)])
