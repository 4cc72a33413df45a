"""Image transformations of Kurakin et al. ("Adversarial examples in the physical world") and the
destruction rate of adversarial examples under them (the training-dynamics study's Figure 5):
additive brightness, multiplicative contrast, Gaussian blur and additive Gaussian noise, each
followed by clipping to the valid range. Images are float32 [N, H, W, C].
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from advbound.analysis import evaluate
from advbound.runtime import checks

KINDS = ("brightness", "contrast", "blur", "noise")


def brightness(x, delta: float, *, bounds):
  """x + delta, clipped."""
  return jnp.clip(jnp.asarray(x, jnp.float32) + float(delta), *checks.check_bounds(bounds))


def contrast(x, factor: float, *, bounds):
  """x * factor, clipped (Kurakin et al.'s contrast change)."""
  checks.check_positive(factor, "factor", allow_zero=True)
  return jnp.clip(jnp.asarray(x, jnp.float32) * float(factor), *checks.check_bounds(bounds))


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
  """The 1-D kernel scipy.ndimage.gaussian_filter uses: radius int(truncate * sigma + 0.5),
  exp(-t^2 / (2 sigma^2)) normalised to sum 1. float32 [2 r + 1]."""
  r = int(truncate * float(sigma) + 0.5)
  t = np.arange(-r, r + 1, dtype=np.float64)
  k = np.exp(-0.5 * t * t / float(sigma) ** 2)
  return (k / k.sum()).astype(np.float32)


def blur(x, sigma: float, *, bounds, truncate: float = 4.0):
  """Gaussian blur of each channel over H and W with scipy's default boundary ("reflect":
  the edge sample repeated, d c b a | a b c d), as scipy.ndimage.gaussian_filter with sigma
  (sigma, sigma) per channel; sigma 0 is the identity."""
  low, high = checks.check_bounds(bounds)
  checks.check_positive(sigma, "sigma", allow_zero=True)
  x = jnp.asarray(x, jnp.float32)
  if float(sigma) == 0:
    return x
  return jnp.clip(_blur(x, jnp.asarray(gaussian_kernel(sigma, truncate))), low, high)


@jax.jit
def _blur(x, kernel):
  r = (kernel.shape[0] - 1) // 2

  def along(v, axis):  # separable: one 1-D convolution per spatial axis
    pad = [(0, 0)] * v.ndim
    pad[axis] = (r, r)
    v = jnp.pad(v, pad, mode="symmetric")
    n = v.shape[axis] - 2 * r
    taps = [jax.lax.slice_in_dim(v, i, i + n, axis=axis) * kernel[i]
            for i in range(kernel.shape[0])]
    return functools.reduce(jnp.add, taps)

  return along(along(x, 1), 2)


def noise(x, sigma: float, key, *, bounds):
  """x + N(0, sigma^2) per value (a fresh draw from `key`), clipped."""
  checks.check_positive(sigma, "sigma", allow_zero=True)
  x = jnp.asarray(x, jnp.float32)
  return jnp.clip(x + float(sigma) * jax.random.normal(key, x.shape), *checks.check_bounds(bounds))


def apply(kind: str, x, level: float, *, bounds, key=None):
  """One of KINDS at `level` (delta, factor, sigma, sigma); noise needs `key`."""
  if kind == "brightness":
    return brightness(x, level, bounds=bounds)
  if kind == "contrast":
    return contrast(x, level, bounds=bounds)
  if kind == "blur":
    return blur(x, level, bounds=bounds)
  if kind == "noise":
    if key is None:
      raise ValueError("the noise transformation needs a jax.random key")
    return noise(x, level, key, bounds=bounds)
  raise ValueError(f"unknown transformation {kind!r}; expected one of {KINDS}")


def destruction_rate(logits_fn, x, x_adv, y, transformed, *, batch_size: int = 500,
                     effective=None) -> dict:
  """Kurakin et al.'s destruction rate: of the effective adversarial examples (x classified
  as y, x_adv not), the fraction that the transformation makes classified as y again.

  Args:
    x, x_adv: float32 [N, ...] clean and adversarial inputs; y: int32 [N] true labels.
    transformed: float32 [N, ...], the transformation applied to x_adv.
    effective: bool [N] `effective_examples(...)` computed once for several transformations of
      the same examples (None: computed here).

  Returns:
    {"rate" (None if no example is effective), "destroyed", "effective"}.
  """
  checks.check_labels(y, np.shape(x)[0])
  y = np.asarray(y)
  if effective is None:
    effective = effective_examples(logits_fn, x, x_adv, y, batch_size=batch_size)
  effective = np.asarray(effective, bool)
  if effective.shape != y.shape:
    raise ValueError(f"effective {effective.shape} must have one entry per input {y.shape}")
  destroyed = effective & (evaluate.predict(logits_fn, np.asarray(transformed, np.float32),
                                            batch_size=batch_size) == y)
  n = int(effective.sum())
  return dict(rate=float(destroyed.sum()) / n if n else None, destroyed=int(destroyed.sum()),
              effective=n)


def effective_examples(logits_fn, x, x_adv, y, *, batch_size: int = 500) -> np.ndarray:
  """bool [N]: x classified as y and x_adv not (the examples a destruction rate counts)."""
  y = np.asarray(y)
  pred = lambda v: evaluate.predict(logits_fn, np.asarray(v, np.float32), batch_size=batch_size)
  return (pred(x) == y) & (pred(x_adv) != y)


__all__ = ["KINDS", "apply", "blur", "brightness", "contrast", "destruction_rate",
           "effective_examples",
           "gaussian_kernel", "noise"]
