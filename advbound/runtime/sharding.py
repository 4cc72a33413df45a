"""The device mesh: data parallelism over every device of every host.

One mesh with a single axis, "data", over `jax.devices()` (all hosts). Batches are split along
their leading axis over it; parameters and other shared arrays are replicated. Kernels stay
plain `jax.jit` functions: jit partitions a computation by its inputs' shardings (GSPMD), so a
kernel called on a sharded batch runs on every device, and one called on ordinary arrays runs as
it always did. On one device every helper here is the identity (or `jnp.asarray`), so the
single-device code path is exactly the unsharded one.

Results do not depend on the device count: every kernel computes per example (noise and
random starts are drawn from keys folded with global example indices, or by jax.random with
the partitionable Threefry, whose values do not depend on the sharding), and the rows a batch
is padded with are copies of real rows, dropped from the results.

Several hosts (`jax.distributed.initialize()`, see `initialize_distributed`): every host runs
the same program on the same inputs; `put_batch` gives each host's devices only the rows they
hold (each host transfers its share), `to_host` gathers a result onto every host, and only
process 0 writes artifacts (`is_writer`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"
_OVERRIDE: list[Sequence[jax.Device]] = []  # devices set by `use_devices` (innermost last)
_MESHES: dict[tuple[int, ...], Mesh] = {}


def devices() -> list[jax.Device]:
  """The devices batches are split over: every device of every host, unless `use_devices`."""
  return list(_OVERRIDE[-1]) if _OVERRIDE else jax.devices()


def num_devices() -> int:
  """Size of the mesh's data axis."""
  return len(devices())


def mesh() -> Mesh:
  """The 1-D mesh ("data",) over `devices()` (cached per device list)."""
  devs = devices()
  key = tuple(d.id for d in devs)
  if key not in _MESHES:
    _MESHES[key] = Mesh(np.asarray(devs), (AXIS,))
  return _MESHES[key]


@contextlib.contextmanager
def use_devices(devs: Sequence[jax.Device]) -> Iterator[None]:
  """Runs the block on the mesh over `devs` (e.g. `jax.devices()[:1]` to compare a sharded
  result with a single device's in one process)."""
  devs = list(devs)
  if not devs:
    raise ValueError("use_devices needs at least one device")
  _OVERRIDE.append(devs)
  try:
    yield
  finally:
    _OVERRIDE.pop()


def is_sharded() -> bool:
  """True when batches are split over more than one device."""
  return num_devices() > 1


def batch_sharding() -> NamedSharding:
  """Leading axis split over the data axis, the rest whole."""
  return NamedSharding(mesh(), P(AXIS))


def replicated_sharding() -> NamedSharding:
  """A full copy on every device."""
  return NamedSharding(mesh(), P())


def round_up(n: int) -> int:
  """The smallest multiple of the device count >= n (and >= 1)."""
  d = num_devices()
  return max(d, -(-int(n) // d) * d)


def pad_rows(a, size: int) -> np.ndarray:
  """[k, ...] -> [size, ...] by repeating the last row (k >= 1, size >= k); numpy."""
  a = np.asarray(a)
  k = a.shape[0]
  if k == size:
    return a
  if k == 0 or size < k:
    raise ValueError(f"cannot pad {k} rows to {size}")
  return np.concatenate([a, np.repeat(a[-1:], size - k, axis=0)])


def put_batch(a) -> jax.Array:
  """A batch [B, ...] (B a multiple of the device count) as one array split along B.

  On one device: `jnp.asarray(a)`. On several, each device receives its rows only, and on
  several hosts each host transfers only the rows of its own devices (every host passes the
  same full array).
  """
  if not is_sharded():
    return jnp.asarray(a)
  if isinstance(a, jax.Array) and a.sharding == batch_sharding():
    return a
  if isinstance(a, jax.Array) and a.is_fully_addressable and jax.process_count() == 1:
    if a.shape[0] % num_devices():
      raise ValueError(f"batch of {a.shape[0]} rows cannot be split over {num_devices()} "
                       "devices; pad it with round_up first")
    return jax.device_put(a, batch_sharding())
  a = np.asarray(a)
  if a.ndim == 0 or a.shape[0] % num_devices():
    raise ValueError(f"batch of shape {a.shape} cannot be split over {num_devices()} devices; "
                     "pad it with round_up first")
  return jax.make_array_from_callback(a.shape, batch_sharding(), lambda idx: a[idx])


def replicate(tree: Any) -> Any:
  """Every array leaf of `tree` as a full copy on every device (parameters, shared inputs).

  The identity on one device; leaves already replicated over the mesh are kept as they are.
  """
  if not is_sharded():
    return tree
  sharding = replicated_sharding()

  def put(leaf):
    if not isinstance(leaf, (jax.Array, np.ndarray)):
      return leaf
    if isinstance(leaf, jax.Array):
      if leaf.sharding.is_equivalent_to(sharding, leaf.ndim):
        return leaf
      if leaf.is_fully_addressable and jax.process_count() == 1:
        return jax.device_put(leaf, sharding)
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # a typed key: place its raw data
      return jax.random.wrap_key_data(put(jax.random.key_data(leaf)),
                                      impl=jax.random.key_impl(leaf))
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

  return jax.tree.map(put, tree)


def to_host(a) -> np.ndarray:
  """A (possibly sharded, possibly multi-host) array as a full numpy array on this host."""
  if isinstance(a, jax.Array) and not a.is_fully_addressable:
    return np.asarray(multihost_utils.process_allgather(a, tiled=True))
  return np.asarray(a)


def is_writer() -> bool:
  """Whether this process writes artifacts (process 0; every single-host process)."""
  return jax.process_index() == 0


def sync(name: str) -> None:
  """Waits until every host reaches this point (a no-op on one host)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def initialize_distributed(**kwargs) -> None:
  """`jax.distributed.initialize(**kwargs)` (on a TPU pod slice or a SLURM / Open MPI cluster it
  finds its coordinator itself), then logs the processes and devices. Call before any other JAX
  operation. On CPU the cross-process collectives use gloo."""
  if os.environ.get("JAX_PLATFORMS", "") == "cpu":  # (asking the backend would start it)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  logging.info("distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


def describe() -> str:
  """One line naming the mesh, for logs and reports."""
  devs = devices()
  kinds = sorted({d.device_kind for d in devs})
  return (f"{len(devs)} device(s) ({', '.join(kinds)}) over {jax.process_count()} process(es)")
