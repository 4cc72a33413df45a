"""He et al.'s decision-boundary analysis: distances to the nearest boundary along many directions.

For an input x (predicted class c) and a direction d_m (RMS 1), the distance along d_m is the
smallest grid magnitude k * step (k = 1 .. K, K = floor(max_distance / step)) whose probe
clip(x + k * step * d_m) is classified != c; the adjacent class is the class of that probe.

How the work runs: every probe is one (image, direction, k) triple. A compiled kernel gathers
a fixed-size batch of such triples on the device (x[image] + k * step * directions[direction],
clipped) and classifies them; a thin host loop walks the grid level by level and keeps only the
(image, direction) pairs still without a boundary, packed into full batches across images. The
kernel compiles once per (images, directions, batch) shape, and batches take at most 16 sizes
(full, or the remainder rounded up to a sixteenth of a full batch); the host sends only small
index arrays and receives one class per probe. With several devices the images and directions
are replicated and each batch of probes is split over the devices (`advbound.runtime.sharding`).

* method="scan" walks k = 1, 2, ... in order and drops a pair at its first crossing: the
  reference semantics, with no evaluation past a pair's answer.
* method="fast" first probes the coarse levels 1, s, 2s, ..., K (stride s), dropping a pair at
  its first coarse crossing, then bisects inside the interval (previous coarse level, crossing
  level]. It answers like scan except where a region of another class is thinner than the
  coarse stride: (a) a stretch of non-center classes that lies strictly between two coarse
  levels is skipped (then fast reports a later crossing, or none); (b) inside the bisected
  interval the class may change more than once, and bisection can land on a later change or a
  different adjacent class. Both need the class to leave c and come back within s grid steps.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, probe, sharding

METHODS = ("scan", "fast")
_TRACES = {"probe": 0}  # incremented when the probe kernel is traced (compile-count tests)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BoundaryResult:
  """Boundary information of N inputs along M directions.

  center: int32 [N], argmax of logits_fn(x).
  distance: float32 [N, M], k * step of the first probe classified != center; inf where none.
  adjacent: int32 [N, M], the class of that probe; -1 where none.
  evaluations: int64 [N], probes evaluated per input (for cost accounting).
  """
  center: jax.Array
  distance: jax.Array
  adjacent: jax.Array
  evaluations: jax.Array


@functools.partial(jax.jit, static_argnames=("bounds",))
def _classify_probes(fn, x, directions, image, direction, magnitude, *, bounds):
  """Classes of the probes x[image] + magnitude * directions[direction].

  Args: x [n, *S]; directions [M, *S]; image, direction int32 [B]; magnitude float32 [B].
  Returns: (classes int32 [B], all logits finite: bool []).
  """
  _TRACES["probe"] += 1
  scale = magnitude.reshape((-1,) + (1,) * (x.ndim - 1))
  probes = x[image] + scale * directions[direction]
  if bounds is not None:
    probes = jnp.clip(probes, bounds[0], bounds[1])
  logits = fn(probes)
  return jnp.argmax(logits, -1).astype(jnp.int32), jnp.all(jnp.isfinite(logits))


@jax.jit
def _classify(fn, x):
  logits = fn(x)
  return jnp.argmax(logits, -1).astype(jnp.int32), jnp.all(jnp.isfinite(logits))


class _Prober:
  """Classifies lists of (image, direction, level) probes in full fixed-size batches."""

  def __init__(self, fn, x, directions, step, bounds, batch_size):
    # the images and directions on every device; the probe lists are split over the devices
    self.fn = fn
    self.x, self.directions = sharding.replicate((jnp.asarray(x), jnp.asarray(directions)))
    self.step, self.bounds = np.float32(step), bounds
    self.batch_size = sharding.round_up(batch_size)
    self.evaluations = np.zeros(len(x), np.int64)

  def __call__(self, image, direction, level):
    """image, direction, level: int [P] -> classes int32 [P]."""
    p, b = len(image), self.batch_size
    if p == 0:
      return np.zeros(0, np.int32)
    np.add.at(self.evaluations, image, 1)
    magnitude = level.astype(np.float32) * self.step
    # full batches of b; the remainder is padded to a multiple of b / 16 (batching.padded_size)
    tail = p % b
    pad = batching.padded_size(tail, b) - tail if tail else 0
    image, direction, magnitude = (np.concatenate([a, np.zeros(pad, a.dtype)])
                                   for a in (image, direction, magnitude))
    pending = {}  # dispatch every batch before reading any back (asynchronous dispatch)
    num_batches = (p + pad) // b + bool((p + pad) % b)
    for i in probe.chunks(num_batches, "boundary probes", last_differs=(p + pad) % b != 0):
      sl = slice(i * b, min(i * b + b, p + pad))
      pending[i] = _classify_probes(
          self.fn, self.x, self.directions, sharding.put_batch(image[sl].astype(np.int32)),
          sharding.put_batch(direction[sl].astype(np.int32)),
          sharding.put_batch(magnitude[sl]), bounds=self.bounds)
    pending = probe.filled(pending, num_batches)
    classes = np.concatenate([sharding.to_host(c) for c, _ in pending])[:p]
    if not all(bool(sharding.to_host(ok)) for _, ok in pending):
      raise FloatingPointError("logits_fn returned NaN or inf logits on boundary probes")
    return classes


def search(logits_fn, x, directions, *, step, max_distance, bounds=None, method="scan",
           stride: int | None = None, batch_size: int = 4096) -> BoundaryResult:
  """Distance to the first decision boundary along each direction, on a grid of magnitudes.

  Args:
    logits_fn: pure function [B, *S] -> logits [B, K].
    x: float32 [N, *S] (inside bounds when given).
    directions: float32 [M, *S], e.g. from `directions.random_orthogonal` (RMS 1 each).
    step: grid spacing of the magnitudes (> 0).
    max_distance: the largest magnitude tried is floor(max_distance / step) * step (>= step).
    bounds: (low, high) to clip every probe to, or None for no clipping.
    method: "scan" (the reference semantics) or "fast" (coarse levels then bisection; see the
      module docstring for when it may differ).
    stride: fast only: coarse stride in grid steps (>= 2); default about sqrt(levels).
    batch_size: probes per compiled call (the memory budget: batch_size inputs of shape S and
      one forward pass of the model on them).

  Returns:
    BoundaryResult with center [N], distance [N, M], adjacent [N, M], evaluations [N].
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  checks.check_positive(step, "step")
  checks.check_positive(max_distance, "max_distance")
  if max_distance < step:
    raise ValueError(f"step {step} is larger than max_distance {max_distance}")
  checks.check_positive(batch_size, "batch_size", integer=True)
  if bounds is not None:
    bounds = checks.check_bounds(bounds)
    checks.check_images(x, bounds)
  x = np.asarray(x, np.float32)
  directions = np.asarray(directions, np.float32)
  if directions.ndim != x.ndim or directions.shape[1:] != x.shape[1:] or len(directions) < 1:
    raise ValueError(f"directions must have shape [M, {', '.join(map(str, x.shape[1:]))}], "
                     f"got {directions.shape}")
  levels = int(math.floor(max_distance / step + 1e-6))
  if stride is None:
    stride = max(2, int(round(math.sqrt(levels))))
  elif isinstance(stride, bool) or not isinstance(stride, int) or stride < 2:
    raise ValueError(f"stride must be an integer >= 2, got {stride!r}")
  n, m = len(x), len(directions)
  fn = as_pytree_fn(logits_fn)
  center, ok = _classify(fn, sharding.replicate(jnp.asarray(x)))
  if not bool(sharding.to_host(ok)):
    raise FloatingPointError("logits_fn returned NaN or inf logits on x")
  center = sharding.to_host(center)
  probe = _Prober(fn, x, directions, step, bounds, batch_size)
  found = np.zeros(n * m, np.int64)  # level of the first crossing, 0 = none
  adjacent = np.full(n * m, -1, np.int32)
  pairs = np.arange(n * m)
  t0 = time.time()

  def walk(schedule, pairs):
    """Probes `pairs` at each level of `schedule` in turn, dropping a pair at its first
    crossing; returns (crossed pairs, their previous uncrossed level, crossing level, class)."""
    out, last = [], np.zeros(n * m, np.int64)
    for i, level in enumerate(schedule):
      if len(pairs) == 0:
        break
      classes = probe(pairs // m, pairs % m, np.full(len(pairs), level))
      crossed = classes != center[pairs // m]
      out.append((pairs[crossed], last[pairs[crossed]], np.full(crossed.sum(), level),
                  classes[crossed]))
      last[pairs] = level
      pairs = pairs[~crossed]
      logging.log_every_n_seconds(
          logging.INFO, "boundary %s: level %d/%d, %d of %d directions still open, %.0f s",
          10, method, i + 1, len(schedule), len(pairs), n * m, time.time() - t0)
    cat = lambda j, dt: np.concatenate([o[j] for o in out]) if out else np.zeros(0, dt)
    return cat(0, np.int64), cat(1, np.int64), cat(2, np.int64), cat(3, np.int32)

  if method == "scan":
    hit, _, level, cls = walk(range(1, levels + 1), pairs)
    found[hit], adjacent[hit] = level, cls
  else:
    coarse = sorted({1, levels, *range(stride, levels, stride)})
    hit, lo, hi, cls = walk(coarse, pairs)
    while True:  # bisection on (lo, hi]: lo is classified as the center, hi is not
      open_ = hi - lo > 1
      if not open_.any():
        break
      idx = np.flatnonzero(open_)
      mid = (lo[idx] + hi[idx]) // 2
      classes = probe(hit[idx] // m, hit[idx] % m, mid)
      crossed = classes != center[hit[idx] // m]
      hi[idx[crossed]], cls[idx[crossed]] = mid[crossed], classes[crossed]
      lo[idx[~crossed]] = mid[~crossed]
    found[hit], adjacent[hit] = hi, cls
  distance = np.where(found > 0, found.astype(np.float32) * np.float32(step), np.inf)
  return BoundaryResult(center=jnp.asarray(center),
                        distance=jnp.asarray(distance.reshape(n, m), jnp.float32),
                        adjacent=jnp.asarray(adjacent.reshape(n, m)),
                        evaluations=jnp.asarray(probe.evaluations))


def linf_distance(result: BoundaryResult, directions) -> jax.Array:
  """The same crossings measured in L-inf: distance * max|d_m|; float32 [N, M] (inf kept)."""
  d = jnp.asarray(directions)
  scale = jnp.max(jnp.abs(d.reshape(d.shape[0], -1)), axis=1)
  return result.distance * scale[None, :]


def purity(adjacent, num_classes: int, k: int = 3) -> jax.Array:
  """Top-1..k cumulative fraction of found boundaries adjacent to the k most common classes.

  Args:
    adjacent: int32 [N, M], -1 where no boundary was found.
    num_classes: number of classes (adjacent values lie in [-1, num_classes)).
    k: how many of the most common adjacent classes to accumulate.

  Returns:
    float32 [N, k]: column j is the fraction of the image's found boundaries whose adjacent class
    is one of its j+1 most common ones. 0 for an image with no boundary found.
  """
  adjacent = jnp.asarray(adjacent)
  if adjacent.ndim != 2:
    raise ValueError(f"adjacent must be [N, M], got shape {adjacent.shape}")
  if checks.is_concrete(adjacent) and (int(adjacent.min(initial=-1)) < -1 or
                                       int(adjacent.max(initial=-1)) >= num_classes):
    raise ValueError(f"adjacent classes must lie in [-1, {num_classes}), got "
                     f"[{int(adjacent.min())}, {int(adjacent.max())}]")
  counts = jnp.sum(jax.nn.one_hot(adjacent, num_classes, dtype=jnp.int32), axis=1)  # -1 -> 0s
  top = jnp.cumsum(-jnp.sort(-counts, axis=1), axis=1)[:, :k]
  total = jnp.sum(counts, axis=1, keepdims=True)
  return jnp.where(total > 0, top / jnp.maximum(total, 1), 0.0).astype(jnp.float32)


def summarize(result: BoundaryResult, *, num_classes: int | None = None,
              directions=None) -> dict:
  """Per-image summaries of a BoundaryResult.

  Returns dict of arrays [N] unless noted: "min" and "median" distance over all directions
  (inf counts as farther than any found boundary: the median is inf when more than half have
  none), "fraction_none" (directions with no boundary), "purity" float32 [N, 3]; with
  `directions`, also "linf_min" and "linf_median" (the same in L-inf).
  """
  distance = jnp.asarray(result.distance)
  if num_classes is None:
    num_classes = int(max(jnp.max(result.adjacent), jnp.max(result.center))) + 1
  out = {"min": jnp.min(distance, axis=1),
         "median": median(distance),
         "fraction_none": jnp.mean(~jnp.isfinite(distance), axis=1),
         "purity": purity(result.adjacent, num_classes, 3)}
  if directions is not None:
    linf = linf_distance(result, directions)
    out["linf_min"], out["linf_median"] = jnp.min(linf, axis=1), median(linf)
  return out


def median(a) -> jax.Array:
  """Median along axis 1, [N, M] -> [N], that keeps inf (jnp.median's interpolation turns
  inf - inf into NaN)."""
  s, m = jnp.sort(a, axis=1), a.shape[1]
  return s[:, m // 2] if m % 2 else (s[:, m // 2 - 1] + s[:, m // 2]) / 2
