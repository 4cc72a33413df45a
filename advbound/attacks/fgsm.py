"""Fast gradient sign method (Goodfellow et al.) and Cao & Gong's smallest-epsilon search."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from advbound.attacks.pgd import ce_gradient
from advbound.attacks.result import make_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks


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


def check_epsilon_grid(epsilons) -> np.ndarray:
  """Returns `epsilons` as float32 [E]; raises unless it is a non-empty, strictly increasing
  grid of finite values >= 0 (shared by the epsilon searches of FGSM and BIM)."""
  eps = np.asarray(epsilons, np.float32)
  if (eps.ndim != 1 or eps.size == 0 or not np.all(np.isfinite(eps)) or np.any(eps < 0)
      or np.any(np.diff(eps) <= 0)):
    raise ValueError(f"epsilons must be a non-empty increasing grid of values >= 0, got {epsilons}")
  return eps


def search_result(x, adv, success, chosen, return_epsilon):
  """The shared return form of the epsilon searches: AttackResult, or (AttackResult, epsilon
  float32 [N], inf where none) with return_epsilon."""
  result = make_result(jnp.asarray(x, jnp.float32), jnp.asarray(adv), jnp.asarray(success))
  return (result, jnp.asarray(chosen)) if return_epsilon else result


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


def fgsm_epsilon_search(logits_fn, x, y, *, epsilons, bounds, targeted=False,
                        batch_size: int | None = None, return_epsilon: bool = False):
  """Per example, the smallest epsilon of an increasing grid at which FGSM succeeds (Cao &
  Gong's T-FGSM / U-FGSM with the search over epsilon of Carlini & Wagner).

  The gradient sign is computed once at x; each grid point costs one forward pass. Success:
  the prediction differs from y (untargeted) or equals y (targeted). The grid's semantics, the
  checks and the return form are those of `bim.bim_epsilon_search`.

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    x: float32 [N, *image_shape] inside bounds.
    y: int32 [N]; true labels (untargeted) or targets (targeted).
    epsilons: strictly increasing grid of L-inf step sizes >= 0, float [E].
    bounds: (low, high).
    targeted: step down the loss of y instead of up.
    batch_size: images per compiled call; default all.
    return_epsilon: also return the chosen epsilon.

  Returns:
    AttackResult: the example at the first (smallest) successful epsilon, the input and success
    False where none succeeds. With return_epsilon: (AttackResult, epsilon float32 [N], inf where
    none succeeds).
  """
  eps = check_epsilon_grid(epsilons)
  low, high, n = checks.check_attack_inputs(x, y, bounds, batch_size=batch_size)
  fn, eps_j = as_pytree_fn(logits_fn), jnp.asarray(eps)
  adv, success, chosen = batching.map_chunks(
      lambda xc, yc: _fgsm_search(fn, xc, yc, eps_j, low, high, bool(targeted)),
      np.asarray(x, np.float32), np.asarray(y), chunk_size=batch_size or n, desc="FGSM search")
  return search_result(x, adv, success, chosen, return_epsilon)
