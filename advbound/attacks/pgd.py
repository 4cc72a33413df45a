"""Projected gradient descent in the L-inf ball (Madry et al.) or the L2 ball; BIM / iterative
FGSM without random start (Kurakin et al.)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from advbound import metrics
from advbound.models import as_pytree_fn
from advbound.runtime import checks, probe


def pgd(logits_fn, key, x, y, *, epsilon, step_size, num_steps, bounds, random_start=True,
        targeted=False, norm="linf", loop=None):
  """PGD on the cross-entropy loss, in the L-inf (default) or L2 ball.

  L-inf: each step moves by `step_size * sign(grad)`; L2: by `step_size * grad / |grad|_2` (per
  example). Steps go up the loss of `y`, or down it when `targeted`; after each step the iterate
  is projected onto the ball of radius `epsilon` around `x`, then clipped to `bounds`.

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
    norm: "linf" or "l2".
    loop: "device" (one compiled lax loop), "host" (one step compiled alone, driven from
      Python: several times faster on XLA's CPU backend) or None ("host" on CPU, else
      "device"); called inside a trace (jit, vmap), PGD always compiles its loop. The same
      iterates up to float rounding.

  Returns:
    float32 [N, *image_shape]: adversarial inputs with |x_adv - x| <= epsilon in `norm`, in
    bounds.
  """
  if norm not in ("linf", "l2"):
    raise ValueError(f"unknown norm {norm!r}; expected 'linf' or 'l2'")
  low, high = checks.check_bounds(bounds)
  checks.check_positive(epsilon, "epsilon", allow_zero=True)
  checks.check_positive(step_size, "step_size", allow_zero=True)
  checks.check_positive(num_steps, "num_steps", allow_zero=True, integer=True)
  checks.check_images(x, bounds)
  checks.check_labels(y, x.shape[0])
  run = _pgd
  if checks.loop_mode(loop) == "host" and checks.is_concrete(x, y, epsilon, step_size):
    run = _pgd_host  # (inside a trace, e.g. adversarial training's step, the loop is compiled)
  return run(as_pytree_fn(logits_fn), key, jnp.asarray(x, jnp.float32), jnp.asarray(y),
             jnp.float32(epsilon), jnp.float32(step_size), num_steps=int(num_steps), low=low,
             high=high, random_start=bool(random_start), targeted=bool(targeted), norm=norm)


def ce_gradient(logits_fn, x, y):
  """d/dx of the summed cross-entropy of logits_fn(x) [N, K] against labels y [N]; [N, ...].

  Summing keeps each example's gradient independent of the batch."""
  def loss(z):
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(z), y).sum()
  return jax.grad(loss)(x)


def _l2_norm(v):
  """Per-example L2 norm of [N, ...], shaped [N, 1, ..., 1] for broadcasting."""
  return metrics.l2(v).reshape((-1,) + (1,) * (v.ndim - 1))


def _program(logits_fn, key, x, y, epsilon, step_size, low, high, random_start, targeted,
             norm):
  """PGD as (start, body): start() the first iterate [N, ...], body(z) one step."""
  if norm == "linf":
    lo = jnp.maximum(x - epsilon, low)
    hi = jnp.minimum(x + epsilon, high)
    project = lambda z: jnp.clip(z, lo, hi)
    direction = jnp.sign
    offset = lambda: jax.random.uniform(key, x.shape, x.dtype, -epsilon, epsilon)
  else:
    def project(z):
      d = z - x
      d = d * jnp.minimum(1.0, epsilon / jnp.maximum(_l2_norm(d), 1e-12))
      return jnp.clip(x + d, low, high)
    direction = lambda g: g / jnp.maximum(_l2_norm(g), 1e-12)

    def offset():  # uniform in the L2 ball: a random direction, radius eps * U^(1/D)
      k_dir, k_rad = jax.random.split(key)
      g = jax.random.normal(k_dir, x.shape, x.dtype)
      dim = x[0].size
      r = jax.random.uniform(k_rad, (x.shape[0],) + (1,) * (x.ndim - 1)) ** (1.0 / dim)
      return epsilon * r * g / jnp.maximum(_l2_norm(g), 1e-12)

  sign = -1.0 if targeted else 1.0

  def start():
    return project(x + offset()) if random_start else x

  def body(z):
    return project(z + sign * step_size * direction(ce_gradient(logits_fn, z, y)))

  return start, body


_STATIC = ("low", "high", "random_start", "targeted", "norm")


@functools.partial(jax.jit, static_argnames=("num_steps",) + _STATIC)
def _pgd(logits_fn, key, x, y, epsilon, step_size, *, num_steps, **static):
  """Compiled PGD (loop="device"); shapes and loop length static, eps and step traced (no
  recompiles)."""
  start, body = _program(logits_fn, key, x, y, epsilon, step_size, **static)
  return jax.lax.fori_loop(0, num_steps, lambda _, z: body(z), start())


@functools.partial(jax.jit, static_argnames=_STATIC)
def _host_start(logits_fn, key, x, y, epsilon, step_size, **static):
  return _program(logits_fn, key, x, y, epsilon, step_size, **static)[0]()


@functools.partial(jax.jit, static_argnames=_STATIC)
def _host_step(logits_fn, key, x, y, epsilon, step_size, z, **static):
  return _program(logits_fn, key, x, y, epsilon, step_size, **static)[1](z)


def _pgd_host(logits_fn, key, x, y, epsilon, step_size, *, num_steps, **static):
  """`_pgd` with one step compiled alone and the loop in Python (loop="host")."""
  z = _host_start(logits_fn, key, x, y, epsilon, step_size, **static)
  for _ in probe.steps(num_steps, "PGD steps"):
    z = _host_step(logits_fn, key, x, y, epsilon, step_size, z, **static)
  return z
