"""Cao & Gong's attack compositions: untargeted from targeted (U-X), combined attacks (CA), and
adapted attacks (-A, the noise amplified by 1 + alpha).

  untargeted  for every target t != y run the targeted attack; keep the successful example with
              the smallest noise (Carlini & Wagner's conversion, Cao & Gong Section 2.2.2)
  combine     per example the successful candidate with the smallest noise (T-CA / U-CA)
  amplify     x'' = clip(x + (1 + alpha)(x' - x))  (Section 5.2.2)
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from advbound import metrics
from advbound.attacks.result import AttackResult, make_result
from advbound.runtime import checks

NORMS = ("l0", "l2", "linf", "rms")


def _check_norm(norm):
  if norm not in NORMS:
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def combine(x, candidates: Sequence[AttackResult], *, norm, success=None) -> AttackResult:
  """Per example, the successful candidate with the smallest distortion in `norm`.

  Args:
    x: float32 [N, *image_shape], the inputs the candidates attacked.
    candidates: C >= 1 AttackResults of x (adversarial [N, *image_shape], success [N]).
    norm: "l0" | "l2" | "linf" | "rms"; distortions are recomputed from x.
    success: optional bool [C, N] replacing the candidates' own success (Cao & Gong judge
      success by the classifier under evaluation, e.g. the region classifier).

  Returns:
    AttackResult: per example the successful candidate of smallest distortion (ties: the first
    candidate), success iff some candidate succeeded; the input itself, success False, where none
    did.
  """
  _check_norm(norm)
  if isinstance(candidates, AttackResult) or not len(candidates):
    raise ValueError("candidates must be a non-empty list of AttackResult")
  x = jnp.asarray(x, jnp.float32)
  if x.ndim < 2:
    raise ValueError(f"x must be a batch [N, *image_shape], got shape {x.shape}")
  for i, c in enumerate(candidates):
    if not isinstance(c, AttackResult):
      raise ValueError(f"candidates[{i}] must be an AttackResult, got {type(c).__name__}")
    if np.shape(c.adversarial) != x.shape or np.shape(c.success) != x.shape[:1]:
      raise ValueError(f"candidates[{i}] has adversarial shape {np.shape(c.adversarial)} and "
                       f"success shape {np.shape(c.success)}; expected {x.shape} and "
                       f"{x.shape[:1]}")
  advs = jnp.stack([jnp.asarray(c.adversarial, jnp.float32) for c in candidates])  # [C, N, ...]
  shape = (len(candidates), x.shape[0])
  if success is None:
    ok = jnp.stack([jnp.asarray(c.success, bool) for c in candidates])
  else:
    if np.shape(success) != shape or not np.issubdtype(np.asarray(success).dtype, np.bool_):
      raise ValueError(f"success must be bool {list(shape)}, got "
                       f"{np.asarray(success).dtype} {list(np.shape(success))}")
    ok = jnp.asarray(success)
  size = jax.vmap(lambda a: metrics.distortions(x, a)[norm])(advs)  # [C, N]
  best = jnp.argmin(jnp.where(ok, size, jnp.inf), axis=0)  # first of the smallest
  chosen = jnp.take_along_axis(advs, best.reshape((1, -1) + (1,) * (x.ndim - 1)), 0)[0]
  return make_result(x, chosen, jnp.any(ok, axis=0))


def untargeted(targeted_attack: Callable[..., AttackResult], logits_fn, x, y, *, num_classes,
               norm, return_per_target=False, **kwargs):
  """Cao & Gong's U-X from a targeted attack X: every target t != y, the smallest successful.

  For k = 1..K-1 the whole batch is attacked once with the targets (y + k) mod K, so each example
  meets every other class once and the batch stays one call per k.

  Args:
    targeted_attack: callable (logits_fn, x, target, **kwargs) -> AttackResult whose success means
      "classified as target", e.g. functools.partial(carlini_wagner_l2, targeted=True),
      functools.partial(bim_epsilon_search, targeted=True, epsilons=..., step_size=...), or jsma.
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    x: float32 [N, *image_shape].
    y: int32 [N], labels in [0, num_classes).
    num_classes: K >= 2.
    norm: "l0" | "l2" | "linf" | "rms", the noise measure of the choice.
    return_per_target: also return the per-target results.
    **kwargs: passed to targeted_attack (bounds, ...).

  Returns:
    AttackResult (success iff some target succeeded; the smallest successful example, ties to
    the smallest k). With return_per_target: (AttackResult, per_target) where per_target is one
    AttackResult whose fields are stacked by target class: adversarial [K, N, *image_shape],
    success bool [K, N], distortion {...: [K, N]}; row t is the attack with target t (the input,
    success False, where t == y). Take target t with jax.tree.map(lambda a: a[t], per_target).
  """
  if not callable(targeted_attack):
    raise ValueError(f"targeted_attack must be callable, got {targeted_attack!r}")
  num_classes = checks.check_count(num_classes, "num_classes", 1 << 30)
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2, got {num_classes}")
  _check_norm(norm)
  x = jnp.asarray(x, jnp.float32)
  if x.ndim < 2:
    raise ValueError(f"x must be a batch [N, *image_shape], got shape {x.shape}")
  n = x.shape[0]
  checks.check_labels(y, n, num_classes)
  y = np.asarray(y)
  results = []
  for k in range(1, num_classes):
    r = targeted_attack(logits_fn, x, ((y + k) % num_classes).astype(np.int32), **kwargs)
    if not isinstance(r, AttackResult):
      raise ValueError(f"targeted_attack must return an AttackResult, got {type(r).__name__}")
    results.append(r)
  best = combine(x, results, norm=norm)
  if not return_per_target:
    return best
  # row t of the K-1 results in "offset k" order: k = (t - y) mod K (k = 0: t == y, no attack)
  order = (np.arange(num_classes)[:, None] - y[None, :]) % num_classes  # [K, N]
  advs = jnp.stack([x] + [jnp.asarray(r.adversarial, jnp.float32) for r in results])
  oks = jnp.stack([jnp.zeros(n, bool)] + [jnp.asarray(r.success, bool) for r in results])
  cols = np.arange(n)[None, :]
  per_adv, per_ok = advs[order, cols], oks[order, cols]
  per_target = jax.vmap(lambda a, s: make_result(x, a, s))(per_adv, per_ok)
  return best, per_target


def amplify(x, adversarial, alpha, *, bounds) -> jax.Array:
  """Cao & Gong's adapted example x'' = clip(x + (1 + alpha)(x' - x), bounds).

  Args:
    x: float32 [N, *image_shape] inside bounds.
    adversarial: float32 [N, *image_shape] (e.g. AttackResult.adversarial; failed rows equal x
      and stay x).
    alpha: the added fraction of noise (>= 0; 0 is the identity).
    bounds: (low, high).

  Returns:
    float32 [N, *image_shape].
  """
  low, high = checks.check_bounds(bounds)
  checks.check_positive(alpha, "alpha", allow_zero=True)
  checks.check_images(x, bounds)
  checks.check_images(adversarial, bounds, name="adversarial")
  if np.shape(adversarial) != np.shape(x):
    raise ValueError(f"adversarial must have the shape of x {np.shape(x)}, "
                     f"got {np.shape(adversarial)}")
  x = jnp.asarray(x, jnp.float32)
  return jnp.clip(x + (1.0 + alpha) * (jnp.asarray(adversarial, jnp.float32) - x), low, high)
