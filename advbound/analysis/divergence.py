"""Divergence between two point clouds through kernel density estimates (the blind-spot study's
train/test divergence of t-SNE embeddings, their Table 1).

Each set gets a Gaussian KDE, `scipy.stats.gaussian_kde` itself with its default Scott's rule
(bandwidth factor n^(-1 / (d + 4)) times the data covariance), and KL(P || Q) = integral of
p log(p / q) is integrated numerically on a regular grid over the points' joint bounding box
(trapezoid rule; the densities are renormalised over the box, so mass outside it is dropped
from both).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def kde(points) -> stats.gaussian_kde:
  """scipy's Gaussian KDE (Scott's rule) of float [N, d] points."""
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or len(points) < points.shape[1] + 1:
    raise ValueError(f"points must be [N, d] with N > d, got shape {points.shape}")
  if not np.all(np.isfinite(points)):
    raise ValueError("points must be finite")
  return stats.gaussian_kde(points.T)


def kl_divergence(p_points, q_points, *, grid: int = 200, padding: float = 0.0) -> float:
  """KL(P || Q) >= 0 between the KDEs of two 2-D point sets, integrated on a grid x grid mesh
  over their joint bounding box (widened by `padding` times its size on each side)."""
  p_points = np.asarray(p_points, np.float64)
  q_points = np.asarray(q_points, np.float64)
  if p_points.ndim != 2 or p_points.shape[1] != 2 or q_points.shape[1:] != (2,):
    raise ValueError(f"kl_divergence integrates over 2-D points, got {p_points.shape} and "
                     f"{q_points.shape}")
  if int(grid) < 2:
    raise ValueError(f"grid must be >= 2 points per axis, got {grid!r}")
  p, q = kde(p_points), kde(q_points)
  both = np.concatenate([p_points, q_points])
  lo, hi = both.min(0), both.max(0)
  lo, hi = lo - padding * (hi - lo), hi + padding * (hi - lo)
  xs = [np.linspace(lo[j], hi[j], int(grid)) for j in range(2)]
  mesh = np.stack(np.meshgrid(*xs, indexing="ij")).reshape(2, -1)
  pd = p(mesh).reshape(int(grid), int(grid))
  qd = q(mesh).reshape(int(grid), int(grid))
  area = lambda f: np.trapezoid(np.trapezoid(f, xs[1], axis=1), xs[0])
  pd, qd = pd / area(pd), qd / area(qd)
  tiny = np.finfo(np.float64).tiny
  integrand = np.where(pd > 0, pd * (np.log(np.maximum(pd, tiny))
                                     - np.log(np.maximum(qd, tiny))), 0.0)
  return float(max(area(integrand), 0.0))
