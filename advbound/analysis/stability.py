"""Temporal stability and sharedness of adversarial perturbations under adversarial training
("Universality, Robustness, and Detectability of Adversarial Perturbations under Adversarial
Training", section 3.1 and appendix C).

A temporal stability profile of a test input is P [T1, T2]: P[t1, t2] = p(y | x + xi_t1;
theta_t2), the probability of the true class under the model of epoch t2 for the perturbation
made at epoch t1 (rows: perturbation epochs, columns: model epochs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from advbound.analysis import evaluate
from advbound.runtime import checks


def maxmin(profile):
  """min over t1 of (max over t2 of P[t1, t2]): small when one perturbation fools every model.
  profile: [..., T1, T2] -> [...]."""
  return jnp.min(jnp.max(jnp.asarray(profile), axis=-1), axis=-1)


def minmax(profile):
  """max over t2 of (min over t1 of P[t1, t2]): large when one model resists every
  perturbation. profile: [..., T1, T2] -> [...]. Never above maxmin (the minimax inequality)."""
  return jnp.max(jnp.min(jnp.asarray(profile), axis=-2), axis=-1)


def profile(logits_fns, perturbed, y, *, batch_size: int = 500) -> np.ndarray:
  """Temporal stability profiles of N inputs.

  Args:
    logits_fns: T2 pure functions, the models of the epochs t2.
    perturbed: T1 arrays [N, ...], x + xi_t1 (the perturbations made at the epochs t1).
    y: int32 [N] true labels.

  Returns:
    float32 [N, T1, T2]: P[n, t1, t2] = p(y_n | perturbed[t1][n]; model t2).
  """
  out = np.empty((len(y), len(perturbed), len(logits_fns)), np.float32)
  for t1, xp in enumerate(perturbed):  # T1 x T2 compiled passes over the N inputs
    for t2, fn in enumerate(logits_fns):
      out[:, t1, t2] = true_class_probability(fn, xp, y, batch_size=batch_size)
  return out


def true_class_probability(logits_fn, x, y, *, batch_size: int = 500) -> np.ndarray:
  """float32 [N]: softmax probability of class y [N] at x [N, ...]."""
  checks.check_labels(y, np.shape(x)[0])
  logits = evaluate.logits(logits_fn, x, batch_size=batch_size)
  p = jax.nn.softmax(jnp.asarray(logits), axis=-1)
  return np.asarray(jnp.take_along_axis(p, jnp.asarray(y)[:, None], axis=1)[:, 0])


def cost_change(logits_fn, x, xi, y, *, bounds, batch_size: int = 500) -> np.ndarray:
  """float32 [N]: J(theta, x + xi, y) - J(theta, x, y), the cross-entropy change a perturbation
  causes (x + xi clipped to bounds). xi: [N, ...] or one perturbation [...] for every input."""
  low, high = checks.check_bounds(bounds)
  x = np.asarray(x, np.float32)
  perturbed = np.clip(x + np.asarray(xi, np.float32), low, high)
  y = jnp.asarray(y)
  ce = lambda v: optax.softmax_cross_entropy_with_integer_labels(
      jnp.asarray(evaluate.logits(logits_fn, v, batch_size=batch_size)), y)
  return np.asarray(ce(perturbed) - ce(x))


def sharedness(logits_fn, perturbations, x, y, *, bounds, batch_size: int = 500) -> np.ndarray:
  """Appendix C's sharedness: for each per-input perturbation xi_i (made for input i of x), the
  fraction of the *other* inputs j it is effective on (x_j classified as y_j, x_j + xi_i not),
  among the other inputs classified correctly.

  Args: perturbations: float32 [N, ...] (xi_i belongs to x_i); x [N, ...]; y [N].
  Returns: float32 [N] (NaN where no other input is classified correctly).
  """
  low, high = checks.check_bounds(bounds)
  x = np.asarray(x, np.float32)
  perturbations = np.asarray(perturbations, np.float32)
  if perturbations.shape != x.shape:
    raise ValueError(f"perturbations {perturbations.shape} must match x {x.shape}")
  y = np.asarray(y)
  correct = evaluate.predict(logits_fn, x, batch_size=batch_size) == y
  out = np.empty(len(x), np.float32)
  for i, xi in enumerate(perturbations):  # host loop over perturbations; inputs in chunks
    fooled = evaluate.predict(logits_fn, np.clip(x + xi, low, high), batch_size=batch_size) != y
    others = correct.copy()
    others[i] = False
    out[i] = np.mean(fooled[others]) if others.any() else np.nan
  return out


def transfer_rates(logits_fn, perturbations, x, y, *, bounds, batch_size: int = 500) -> np.ndarray:
  """Appendix C's sharedness ratio against a separate set of inputs: for each perturbation xi_p
  [P, ...], the fraction of the inputs x [M, ...] classified as y [M] that x + xi_p (clipped)
  no longer is. float32 [P] (NaN when no input of x is classified correctly)."""
  low, high = checks.check_bounds(bounds)
  x = np.asarray(x, np.float32)
  perturbations = np.asarray(perturbations, np.float32)
  if perturbations.shape[1:] != x.shape[1:]:
    raise ValueError(f"perturbations {perturbations.shape} and inputs {x.shape} must have one "
                     "image shape")
  y = np.asarray(y)
  correct = evaluate.predict(logits_fn, x, batch_size=batch_size) == y
  if not correct.any():
    return np.full(len(perturbations), np.nan, np.float32)
  xc, yc = x[correct], y[correct]
  out = np.empty(len(perturbations), np.float32)
  for p, xi in enumerate(perturbations):  # host loop over perturbations; inputs in chunks
    out[p] = np.mean(evaluate.predict(logits_fn, np.clip(xc + xi, low, high),
                                      batch_size=batch_size) != yc)
  return out


def loglog_pearson(a, b) -> dict:
  """Pearson's r of log(a) and log(b) over the pairs where both are > 0 (section 3.1's
  sharedness vs stability), with its two-sided p-value (t test, n - 2 degrees of freedom).

  Args: a, b: float [N].
  Returns: {"r", "p" (None when n < 3), "n" (pairs used), "dropped" (pairs with a value <= 0
  or not finite)}.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 1:
    raise ValueError(f"a {a.shape} and b {b.shape} must be vectors of one length")
  keep = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
  n = int(keep.sum())
  if n < 3:
    return dict(r=None, p=None, n=n, dropped=int(len(a) - n))
  u, v = np.log(a[keep]), np.log(b[keep])
  u, v = u - u.mean(), v - v.mean()
  denom = np.sqrt((u * u).sum() * (v * v).sum())
  r = float(np.clip((u * v).sum() / denom, -1, 1)) if denom > 0 else float("nan")
  t = r * np.sqrt((n - 2) / max(1e-300, 1 - r * r))
  p = float(2 * stats.t.sf(abs(t), n - 2)) if np.isfinite(r) else None
  return dict(r=r, p=p, n=n, dropped=int(len(a) - n))
