"""Fast gradient sign method (Goodfellow et al.) and Cao & Gong's smallest-epsilon search."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from advbound import checks
from advbound.attacks.pgd import ce_gradient
from advbound.attacks.result import make_result
from advbound.models import as_pytree_fn


def _loss_sign(logits_fn, x, y, targeted):
  """sign of d CE(logits_fn(x), y) / dx, negated when targeted; float32 [N, ...]."""
  s = jnp.sign(ce_gradient(logits_fn, x, y))
  return -s if targeted else s


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _fgsm(logits_fn, x, y, epsilon, low, high, targeted):
  return jnp.clip(x + epsilon * _loss_sign(logits_fn, x, y, targeted), low, high)


def fgsm(logits_fn, x, y, *, epsilon, bounds, targeted=False):
  """One signed-gradient step of size `epsilon` on the cross-entropy, clipped to `bounds`.

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    x: float32 [N, *image_shape] inside bounds.
    y: int32 [N]; true labels (untargeted) or targets (targeted: the step descends their loss).
    epsilon: L-inf step (>= 0).
    bounds: (low, high).

  Returns:
    float32 [N, *image_shape].
  """
  low, high = checks.check_bounds(bounds)
  checks.check_positive(epsilon, "epsilon", allow_zero=True)
  checks.check_images(x, bounds)
  checks.check_labels(y, np.shape(x)[0])
  return _fgsm(as_pytree_fn(logits_fn), jnp.asarray(x, jnp.float32), jnp.asarray(y),
               jnp.float32(epsilon), low, high, bool(targeted))


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _fgsm_search(logits_fn, x, y, epsilons, low, high, targeted):
  s = _loss_sign(logits_fn, x, y, targeted)

  def at(eps):
    adv = jnp.clip(x + eps * s, low, high)
    pred = jnp.argmax(logits_fn(adv), -1)
    return adv, (pred == y) if targeted else (pred != y)

  advs, ok = jax.lax.map(at, epsilons)  # [E, N, ...], [E, N]
  first = jnp.argmax(ok, axis=0)        # first epsilon that succeeds (0 if none)
  success = jnp.any(ok, axis=0)
  adv = jnp.take_along_axis(advs, first.reshape((1, -1) + (1,) * (x.ndim - 1)), 0)[0]
  return adv, success, jnp.where(success, epsilons[first], jnp.inf)


def fgsm_epsilon_search(logits_fn, x, y, *, epsilons, bounds, targeted=False):
  """Per example, the smallest epsilon of an increasing grid at which FGSM succeeds.

  The gradient sign is computed once at x; each grid point costs one forward pass.

  Args:
    epsilons: increasing grid of L-inf step sizes, float [E].
    (others as `fgsm`)

  Returns:
    (AttackResult, epsilon float32 [N]): the example at the smallest successful epsilon (the
    input and success False where none succeeds), and that epsilon (inf where none).
  """
  eps = np.asarray(epsilons, np.float32)
  if eps.ndim != 1 or eps.size == 0 or np.any(eps < 0) or np.any(np.diff(eps) <= 0):
    raise ValueError(f"epsilons must be a non-empty increasing grid of values >= 0, got {epsilons}")
  low, high = checks.check_bounds(bounds)
  checks.check_images(x, bounds)
  checks.check_labels(y, np.shape(x)[0])
  x = jnp.asarray(x, jnp.float32)
  adv, success, chosen = _fgsm_search(as_pytree_fn(logits_fn), x, jnp.asarray(y),
                                      jnp.asarray(eps), low, high, bool(targeted))
  return make_result(x, adv, success), chosen
