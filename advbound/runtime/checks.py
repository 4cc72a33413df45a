"""Input checks shared by every stage: each failure names the bad value.

Checks run only on concrete arrays; inside a jit trace (tracers) they are skipped, so library
functions can call them unconditionally at their entry points.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np

from advbound.runtime import sharding


def is_concrete(*arrays) -> bool:
  """True when no argument is a jax tracer (the values can be inspected)."""
  return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def check_bounds(bounds) -> tuple[float, float]:
  """Returns `bounds` as (low, high) floats; raises unless it is two finite numbers low < high."""
  try:
    low, high = (float(b) for b in bounds)
  except (TypeError, ValueError) as e:
    raise ValueError(f"bounds must be (low, high), got {bounds!r}") from e
  if not (np.isfinite(low) and np.isfinite(high) and low < high):
    raise ValueError(f"bounds must be finite with low < high, got {bounds!r}")
  return low, high


def check_images(x, bounds, *, name: str = "x") -> None:
  """Raises if `x` [N, ...] holds NaN/inf or values outside `bounds` (concrete arrays only)."""
  low, high = check_bounds(bounds)
  if np.ndim(x) < 2:
    raise ValueError(f"{name} must be a batch [N, *image_shape], got shape {np.shape(x)}")
  if not is_concrete(x):
    return
  a = sharding.to_host(x)
  if not np.all(np.isfinite(a)):
    raise ValueError(f"{name} contains NaN or inf")
  lo, hi = float(a.min()), float(a.max())
  tol = 1e-6 * max(1.0, abs(high - low))
  if lo < low - tol or hi > high + tol:
    raise ValueError(f"{name} spans [{lo}, {hi}], outside bounds ({low}, {high})")


def check_attack_inputs(x, y, bounds, *, batch_size=None) -> tuple[float, float, int]:
  """The entry checks every attack shares: bounds, images x [N, ...] inside them, labels y
  int [N], and an optional batch size (None or an int > 0). Returns (low, high, N)."""
  low, high = check_bounds(bounds)
  check_images(x, bounds)
  n = np.shape(x)[0]
  check_labels(y, n)
  if batch_size is not None:
    check_positive(batch_size, "batch_size", integer=True)
  return low, high, n


def check_labels(y, n: int, num_classes: int | None = None, *, name: str = "y") -> None:
  """Raises unless `y` is int [n] (and within [0, num_classes) when that is given)."""
  if np.ndim(y) != 1 or np.shape(y)[0] != n:
    raise ValueError(f"{name} must have shape [{n}], got {np.shape(y)}")
  if not np.issubdtype(sharding.to_host(y).dtype if is_concrete(y) else y.dtype, np.integer):
    raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
  if num_classes is not None and is_concrete(y) and n:
    a = sharding.to_host(y)
    if a.min() < 0 or a.max() >= num_classes:
      bad = a[(a < 0) | (a >= num_classes)][0]
      raise ValueError(f"{name} holds label {bad} outside [0, {num_classes})")


def check_positive(value, name: str, *, allow_zero: bool = False, integer: bool = False):
  """Raises unless `value` is a finite number > 0 (>= 0 with allow_zero; an int with integer)."""
  if not is_concrete(value):
    return value
  ok_type = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
  if isinstance(value, bool) or not ok_type or not np.isfinite(value) or (
      value < 0 if allow_zero else value <= 0):
    kind = "integer" if integer else "number"
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"{name} must be a finite {kind} {bound}, got {value!r}")
  return value


def check_count(value, name: str, at_most: int) -> int:
  """Returns `value` if it is an int in [1, at_most]; raises naming it otherwise."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not (
      0 < value <= at_most):
    raise ValueError(f"{name} must be an int in [1, {at_most}], got {value!r}")
  return int(value)


def check_finite_logits(logits, *, name: str = "logits") -> None:
  """Raises if concrete `logits` hold NaN or inf (a broken model must not pass silently)."""
  if is_concrete(logits) and not np.all(np.isfinite(sharding.to_host(logits))):
    raise FloatingPointError(f"{name} contain NaN or inf")


LOOPS = ("host", "device")


def loop_mode(loop: str | None) -> str:
  """An attack's `loop` argument resolved: "device" runs its iterations as one compiled lax
  loop; "host" compiles one iteration and drives it from Python. None picks "host" on XLA's CPU
  backend, which runs a model's backward convolutions inside a lax loop with a generic kernel
  several times slower than outside one (`benchmarks/compiled_loop.py`), and "device"
  elsewhere."""
  if loop is None:
    return "host" if jax.default_backend() == "cpu" else "device"
  if not isinstance(loop, str) or loop not in LOOPS:
    raise ValueError(f"unknown loop {loop!r}; expected None, 'host' or 'device'")
  return loop
