"""Projected gradient descent in the L-inf ball (Madry et al.); BIM / iterative FGSM without
random start (Kurakin et al.)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from advbound import checks
from advbound.models import as_pytree_fn


def pgd(logits_fn, key, x, y, *, epsilon, step_size, num_steps, bounds, random_start=True,
        targeted=False):
  """L-inf PGD on the cross-entropy loss.

  Each step moves by `step_size * sign(grad)` (up the loss of `y`, or down it when `targeted`),
  then projects onto the L-inf ball of radius `epsilon` around `x` and onto `bounds`.

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    key: jax.random key for the random start (uniform in the eps-ball, clipped to bounds).
    x: float32 [N, *image_shape] inside bounds.
    y: int32 [N]; true labels (untargeted) or target labels (targeted).
    epsilon: L-inf radius (>= 0), in the units of `bounds`.
    step_size: step per iteration (>= 0).
    num_steps: number of iterations (int >= 0).
    bounds: (low, high) valid pixel range.
    random_start: start from a uniform point of the ball (Madry) instead of x (BIM).
    targeted: descend the loss of y instead of ascending it.

  Returns:
    float32 [N, *image_shape]: adversarial inputs with |x_adv - x|_inf <= epsilon, in bounds.
  """
  low, high = checks.check_bounds(bounds)
  checks.check_positive(epsilon, "epsilon", allow_zero=True)
  checks.check_positive(step_size, "step_size", allow_zero=True)
  checks.check_positive(num_steps, "num_steps", allow_zero=True, integer=True)
  checks.check_images(x, bounds)
  checks.check_labels(y, x.shape[0])
  return _pgd(as_pytree_fn(logits_fn), key, jnp.asarray(x, jnp.float32), jnp.asarray(y),
              jnp.float32(epsilon), jnp.float32(step_size), int(num_steps), low, high,
              bool(random_start), bool(targeted))


@functools.partial(jax.jit, static_argnums=(6, 7, 8, 9, 10))
def _pgd(logits_fn, key, x, y, epsilon, step_size, num_steps, low, high, random_start, targeted):
  """Compiled PGD; shapes and loop length static, eps and step traced (no recompiles)."""
  lo = jnp.maximum(x - epsilon, low)
  hi = jnp.minimum(x + epsilon, high)
  if random_start:
    x_adv = jnp.clip(x + jax.random.uniform(key, x.shape, x.dtype, -epsilon, epsilon), lo, hi)
  else:
    x_adv = x
  sign = -1.0 if targeted else 1.0

  def loss(z):
    logits = logits_fn(z)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()

  def body(_, z):
    g = jax.grad(loss)(z)
    return jnp.clip(z + sign * step_size * jnp.sign(g), lo, hi)

  return jax.lax.fori_loop(0, num_steps, body, x_adv)
