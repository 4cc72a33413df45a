"""The blind-spot transformation (Zhang et al., "The Limitations of Adversarial Training and the
Blind-Spot Attack"): scale and shift every pixel, x' = alpha x + beta, written on the paper's
[-0.5, 0.5] scale. For data in bounds (low, high) with centre c = (low + high) / 2 and span
s = high - low, the same image is

  x' = c + alpha (x - c) + beta s,

which stays inside the bounds for every x exactly when 0 < alpha <= 1 and
|beta| <= (1 - alpha) / 2 (the paper chooses alpha and beta so that it does).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from advbound.runtime import checks

# The paper's (alpha, beta) grids: beta 0 or (1 - alpha) / 2 for each alpha.
MNIST_ALPHAS = (1.0, 0.9, 0.8, 0.7)
FASHION_MNIST_ALPHAS = (1.0, 0.95, 0.9)


def grid(alphas) -> tuple[tuple[float, float], ...]:
  """((alpha, 0), (alpha, (1 - alpha) / 2), ...) for each alpha (one pair where they agree)."""
  out = []
  for a in alphas:
    out.append((float(a), 0.0))
    beta = round((1.0 - float(a)) / 2, 12)  # 0.05, not 0.04999999999999999, for alpha 0.9
    if beta != 0:
      out.append((float(a), beta))
  return tuple(out)


def scale_shift(x, alpha: float, beta: float, *, bounds):
  """x' = c + alpha (x - c) + beta (high - low): float32 [N, ...] inside bounds.

  Raises ValueError if (alpha, beta) could leave the valid range (alpha not in (0, 1], or
  |beta| > (1 - alpha) / 2) or x is outside bounds.
  """
  low, high = checks.check_bounds(bounds)
  checks.check_images(x, bounds)
  if not (0.0 < float(alpha) <= 1.0):
    raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
  if abs(float(beta)) > (1.0 - float(alpha)) / 2 + 1e-9:
    raise ValueError(f"|beta| must be at most (1 - alpha) / 2 = {(1 - alpha) / 2:g} to stay "
                     f"in range, got beta = {beta!r} with alpha = {alpha!r}")
  centre, span = (low + high) / 2.0, high - low
  out = centre + float(alpha) * (jnp.asarray(x, jnp.float32) - centre) + float(beta) * span
  return jnp.clip(out, low, high)  # rounding only: the range is kept by construction


def paper_scale(x, *, bounds) -> np.ndarray:
  """x mapped to the paper's [-0.5, 0.5] (for checks and plots)."""
  low, high = checks.check_bounds(bounds)
  return (np.asarray(x, np.float32) - low) / (high - low) - 0.5
