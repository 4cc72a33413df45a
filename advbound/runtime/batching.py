"""Fixed-shape chunking: apply a jitted function to a large batch under a memory budget.

The last chunk is padded to the chunk size (by repeating its final row), so the function compiles
once per chunk shape (or, with tail="bucket", to the next sixteenth of a chunk); padded rows are
dropped from the result. With several devices the chunk
size is rounded up to a multiple of the device count and every chunk is split over the devices
(`advbound.runtime.sharding`), so a jitted `fn` runs data-parallel; with one device nothing changes.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import jax
import numpy as np
from absl import logging

from advbound.runtime import probe, sharding


# Rows per chunk of an attack whose iteration is driven from the host on CPU (loop="host"):
# XLA:CPU's convolutions run ~3x slower per image at a batch of 500 than at 50 (the CIFAR CNN
# of benchmarks/autoattack.py: input gradient 1,175 ms for 500 images, 361 ms for ten of 50),
# so such attacks split a larger batch_size into chunks of this many rows.
HOST_CHUNK = 64


def attack_chunking(batch_size: int, loop: str) -> dict[str, Any]:
  """`map_chunks`' chunk_size and tail for an attack of `batch_size` rows per call run with
  `loop`: with "host", chunks of at most HOST_CHUNK rows and a bucketed last chunk (its pieces
  compile cheaply); with "device", `batch_size` and one compiled shape."""
  if loop == "host":
    return dict(chunk_size=min(batch_size, HOST_CHUNK), tail="bucket")
  return dict(chunk_size=batch_size, tail="full")


def _loop_name(fn) -> str:
  """A name for map_chunks' loop in --estimate's table when the caller gives none: the module
  of the chunk's function ("knn chunks", "cw_linf chunks"), its own name if it has one."""
  inner = getattr(fn, "func", fn)  # functools.partial
  name = getattr(inner, "__name__", "")
  module = (getattr(inner, "__module__", None) or "").rsplit(".", 1)[-1]
  if name and not name.startswith("<") and name not in ("chunk", "attack_chunk"):
    return f"{module} {name}" if module else name
  return f"{module} chunks" if module else "chunks"


def map_chunks(fn: Callable[..., Any], *arrays, chunk_size: int, desc: str | None = None,
               tail: str = "full") -> Any:
  """Returns fn(*arrays) computed chunk by chunk along the leading axis.

  Args:
    fn: maps arrays with leading size `chunk_size` (rounded up to a multiple of the device
      count; the arrays are split over the devices) to a pytree of arrays with that leading
      size.
    *arrays: arrays sharing the leading size N.
    chunk_size: rows per call (> 0).
    desc: if given, progress (chunks done, rows per second, ETA) is logged under this name.
    tail: how the last, partial chunk is padded: "full", to the chunk size (one compiled
      shape); "bucket", to `padded_size` (at most a sixteenth of a chunk wasted, up to 16
      shapes): for a fn whose compiled pieces are cheap beside the work padding would waste
      (an attack driving one compiled iteration from Python).

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
  if tail not in ("full", "bucket"):
    raise ValueError(f"unknown tail {tail!r}; expected 'full' or 'bucket'")
  size = sharding.round_up(min(chunk_size, n))
  outputs = {}
  num_chunks = -(-n // size)
  t0 = time.time()
  for i in probe.chunks(num_chunks, desc or _loop_name(fn), last_differs=n % size != 0):
    start = i * size
    stop = min(start + size, n)
    rows = size if tail == "full" else padded_size(stop - start, size)
    chunk = [sharding.put_batch(sharding.pad_rows(a[start:stop], rows)) for a in arrays]
    out = fn(*chunk)
    outputs[i] = jax.tree.map(lambda o, k=stop - start: sharding.to_host(o)[:k], out)
    if desc and num_chunks > 1:
      elapsed = time.time() - t0
      logging.info("%s: chunk %d/%d, %.1f rows/s, ETA %.0f s", desc, i + 1, num_chunks,
                   stop / max(elapsed, 1e-9), elapsed / stop * (n - stop))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *probe.filled(outputs, num_chunks))


def padded_size(rows: int, full: int) -> int:
  """The batch size that `rows` (> 0) remaining rows are padded to when a full batch holds
  `full`: `full` if rows >= full, else rows rounded up to a multiple of a sixteenth of `full`
  (and of the device count). So at most 16 batch shapes compile and padding wastes at most a
  sixteenth of a batch (boundary probes, region votes)."""
  if rows >= full:
    return full
  grain = sharding.round_up(max(full // 16, 1))
  return min(full, -(-rows // grain) * grain)
