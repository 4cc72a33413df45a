"""Cao & Gong's T-IGSM / U-IGSM: the basic iterative method (Kurakin et al.) at the smallest
successful epsilon of a grid.

For each epsilon of an increasing grid, BIM runs from x (no random start):
  x'_0 = x,  x'_{k+1} = Clip_{x, eps}(x'_k + step * sign(grad_x CE(x'_k, y)))   (targeted: - step)
for Kurakin et al.'s number of iterations  n(eps) = int(min(eps / step + 4, 1.25 * eps / step)),
clipped to the eps-ball and to `bounds` after every step. As Cao & Gong describe IGSM, an example
stops at its first successful iterate (stop_at_success=True; False runs all n(eps) steps, as
Foolbox's LinfBasicIterativeAttack does). Per example, the answer is the first epsilon of the
grid at which BIM succeeds.

All of it is one compiled program: a `lax.while_loop` over the grid (stopping once every example
has succeeded) around a `lax.while_loop` over the steps, whose count n(eps) is a traced value, so
one compilation serves every epsilon.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from advbound.attacks.fgsm import check_epsilon_grid, search_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks


def kurakin_num_steps(epsilon, step_size) -> int:
  """Kurakin et al.'s iteration count min(eps / step + 4, 1.25 * eps / step), truncated to an int
  as int() in their code does (with a 1e-6 relative tolerance, so that 0.1 / 0.025 =
  3.9999999999999996 counts as 4). Note: eps < 0.8 * step gives 0 steps (BIM returns x)."""
  ratio = float(epsilon) / float(step_size)
  return int(np.floor(min(ratio + 4, 1.25 * ratio) * (1 + 1e-6)))


@functools.partial(jax.jit, static_argnums=(6, 7, 8, 9))
def _bim_search(logits_fn, x, y, epsilons, num_steps, step_size, low, high, targeted,
                stop_at_success):
  """Compiled search. x: [n, ...]; y: int32 [n]; epsilons: float32 [E]; num_steps: int32 [E].

  Returns:
    (adversarial [n, ...], success bool [n], chosen epsilon float32 [n], inf where none).
  """
  sign = -1.0 if targeted else 1.0

  def fooled(logits):
    pred = jnp.argmax(logits, -1)
    return (pred == y) if targeted else (pred != y)

  def loss(z):
    logits = logits_fn(z)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum(), logits

  def bim(eps, n):
    lo, hi = jnp.maximum(x - eps, low), jnp.minimum(x + eps, high)

    def cond(carry):
      k, _, stopped = carry
      return (k < n) & ~jnp.all(stopped)

    def body(carry):
      k, z, stopped = carry
      grad, logits = jax.grad(loss, has_aux=True)(z)
      if stop_at_success:
        stopped = stopped | fooled(logits)
      z_next = jnp.clip(z + sign * step_size * jnp.sign(grad), lo, hi)
      return k + 1, jnp.where(stopped.reshape((-1,) + (1,) * (x.ndim - 1)), z, z_next), stopped

    _, z, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), x, jnp.zeros(x.shape[0], bool)))
    return z, fooled(logits_fn(z))

  def cond(carry):
    i, _, found, _ = carry
    return (i < epsilons.shape[0]) & ~jnp.all(found)

  def body(carry):
    i, adv, found, chosen = carry
    z, ok = bim(epsilons[i], num_steps[i])
    new = ok & ~found
    adv = jnp.where(new.reshape((-1,) + (1,) * (x.ndim - 1)), z, adv)
    return i + 1, adv, found | ok, jnp.where(new, epsilons[i], chosen)

  n = x.shape[0]
  carry = (jnp.int32(0), x, jnp.zeros(n, bool), jnp.full(n, jnp.inf, jnp.float32))
  _, adv, found, chosen = jax.lax.while_loop(cond, body, carry)
  return adv, found, chosen


def bim_epsilon_search(logits_fn, x, y, *, epsilons, step_size, bounds, targeted=False,
                       batch_size: int | None = None, return_epsilon: bool = False,
                       stop_at_success: bool = True):
  """Per example, the smallest epsilon of an increasing grid at which BIM succeeds.

  The grid's semantics, the checks and the return form are those of
  `fgsm.fgsm_epsilon_search`. Cao & Gong fix step = 1/256 of the pixel range.

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    x: float32 [N, *image_shape] inside bounds.
    y: int32 [N]; true labels (untargeted) or targets (targeted).
    epsilons: strictly increasing grid of L-inf radii >= 0, float [E].
    step_size: BIM's step alpha (> 0), in the units of bounds.
    bounds: (low, high).
    targeted: descend the loss of y instead of ascending it.
    batch_size: images per compiled call; default all.
    return_epsilon: also return the chosen epsilon.
    stop_at_success: an example stops at its first successful iterate (Cao & Gong's IGSM);
      False: all kurakin_num_steps(eps, step_size) steps, success judged at the last iterate.

  Returns:
    AttackResult: the example at the first (smallest) successful epsilon, the input and success
    False where none succeeds. With return_epsilon: (AttackResult, epsilon float32 [N], inf where
    none succeeds).
  """
  eps = check_epsilon_grid(epsilons)
  checks.check_positive(step_size, "step_size")
  low, high, n = checks.check_attack_inputs(x, y, bounds, batch_size=batch_size)
  steps = np.array([kurakin_num_steps(e, step_size) for e in np.asarray(epsilons, np.float64)],
                   np.int32)
  fn, eps_j, steps_j = as_pytree_fn(logits_fn), jnp.asarray(eps), jnp.asarray(steps)
  adv, success, chosen = batching.map_chunks(
      lambda xc, yc: _bim_search(fn, xc, yc, eps_j, steps_j, jnp.float32(step_size), low, high,
                                 bool(targeted), bool(stop_at_success)),
      np.asarray(x, np.float32), np.asarray(y), chunk_size=batch_size or n, desc="BIM search")
  return search_result(x, adv, success, chosen, return_epsilon)
