"""Carlini & Wagner's L2 attack, with optional fixed-perturbation ensembles (OPTMARGIN).

minimize  |x' - x|_2^2 + c * sum_i f(clip(x' + v_i))   over x' = tanh box(w),

f = max(Z_y - max_{j != y} Z_j + kappa, 0) (untargeted; targeted: max(max_{j != t} Z_j - Z_t +
kappa, 0)). Adam runs on w; per example, c is multiplied by 10 until a first success and then
bisected. The iterations of one binary-search step run inside one compiled `lax.while_loop`
(no host transfer per iteration; loop="device", the default off CPU) or as one jitted iteration
driven from Python (loop="host", the default on CPU, where XLA runs a model's backward
convolutions inside a loop with a slower kernel); the binary-search update of c runs in Python.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from advbound.attacks.result import AttackResult, make_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, probe, sharding

_BIG = 1e10  # "no upper bound on c yet", as in the reference implementation


def _margins(logits, y, targeted):
  """Z_y - max_{j != y} Z_j (untargeted) or max_{j != y} Z_j - Z_y (targeted); [..., N]."""
  onehot = jax.nn.one_hot(y, logits.shape[-1], dtype=bool)
  real = jnp.sum(jnp.where(onehot, logits, 0.0), -1)
  other = jnp.max(jnp.where(onehot, -jnp.inf, logits), -1)
  return other - real if targeted else real - other


_STATIC = ("low", "high", "confidence", "max_iterations", "learning_rate", "abort_early",
           "targeted", "abort_early_scope", "distortion_weight")


def _check_every(max_iterations: int) -> int:
  """Iterations between two abort-early checkpoints (Carlini & Wagner: a tenth of the run)."""
  return max(max_iterations // 10, 1)


def _program(logits_fn, x, y, const, ensemble, *, low, high, confidence, max_iterations,
             learning_rate, abort_early, targeted, abort_early_scope, distortion_weight):
  """One binary-search step's loop as (initial carry, cond, body) for a chunk of n images.

  Args (E ensemble members): x [n, ...]; y int32 [n]; const float32 [n]; ensemble [E, ...]
  perturbations (zeros [1, ...] for plain CW). The carry is (iteration, w, Adam state, active
  [n], loss at the last check [n], best_l2 [n], best_adv [n, ...], succeeded this step [n]).
  """
  mul, plus = (high - low) / 2, (high + low) / 2
  w0 = jnp.arctanh((x - plus) / mul * 0.999999)
  x0 = jnp.tanh(w0) * mul + plus  # x as the tanh box represents it
  members = ensemble.shape[0]
  tx = optax.adam(learning_rate)
  check_every = _check_every(max_iterations)

  def losses(w):
    xp = jnp.tanh(w) * mul + plus
    inputs = jnp.clip(xp[None] + ensemble[:, None], low, high)  # [E, n, ...]
    logits = logits_fn(inputs.reshape((-1,) + x.shape[1:])).reshape(members, x.shape[0], -1)
    margin = _margins(logits, y[None], targeted)  # [E, n]
    l2 = jnp.sum(jnp.square(xp - x0).reshape(x.shape[0], -1), -1)
    per_example = distortion_weight * l2 + const * jnp.sum(jnp.maximum(margin + confidence, 0.0), 0)
    return per_example.sum(), (per_example, l2, margin, xp)

  def cond(carry):
    it, _, _, active, *_ = carry
    return (it < max_iterations) & jnp.any(active)

  def body(carry):
    it, w, opt_state, active, prev, best_l2, best_adv, ok = carry
    grads, (loss, l2, margin, xp) = jax.grad(losses, has_aux=True)(w)
    # success of the current iterate: every member misclassified with margin `confidence`
    # (argmax of the logits with Z_y raised by kappa is another class; targeted: Z_t lowered by
    # kappa is still the argmax)
    fooled = jnp.all(margin + confidence < 0.0, axis=0)
    fooled = fooled & active
    better = fooled & (l2 < best_l2)
    best_l2 = jnp.where(better, l2, best_l2)
    best_adv = jnp.where(better.reshape((-1,) + (1,) * (x.ndim - 1)), xp, best_adv)
    ok = ok | fooled
    updates, opt_state = tx.update(grads, opt_state)
    mask = active.reshape((-1,) + (1,) * (x.ndim - 1))
    w = jnp.where(mask, w + updates, w)
    if abort_early:
      checkpoint = it % check_every == 0
      if abort_early_scope == "batch":  # the reference: the chunk's summed loss decides for all
        loss = jnp.broadcast_to(jnp.sum(loss), loss.shape)
      stalled = checkpoint & (loss > prev * 0.9999)
      active = active & ~stalled
      prev = jnp.where(checkpoint, loss, prev)
    return it + 1, w, opt_state, active, prev, best_l2, best_adv, ok

  def init(best_l2, best_adv):
    n = x.shape[0]
    return (jnp.int32(0), w0, tx.init(w0), jnp.ones(n, bool), jnp.full(n, 1e6, jnp.float32),
            best_l2, best_adv, jnp.zeros(n, bool))

  return init, cond, body


@functools.partial(jax.jit, static_argnames=_STATIC)
def _optimize(logits_fn, x, y, const, best_l2, best_adv, ensemble, **settings):
  """One binary-search step as one compiled lax.while_loop (loop="device").

  Returns:
    (best_l2 [n], best_adv [n, ...], succeeded_this_step bool [n]).
  """
  init, cond, body = _program(logits_fn, x, y, const, ensemble, **settings)
  *_, best_l2, best_adv, ok = jax.lax.while_loop(cond, body, init(best_l2, best_adv))
  return best_l2, best_adv, ok


@functools.partial(jax.jit, static_argnames=_STATIC)
def _host_init(logits_fn, x, y, const, best_l2, best_adv, ensemble, **settings):
  return _program(logits_fn, x, y, const, ensemble, **settings)[0](best_l2, best_adv)


@functools.partial(jax.jit, static_argnames=_STATIC, donate_argnums=(1,))
def _host_body(logits_fn, carry, x, y, const, ensemble, **settings):
  return _program(logits_fn, x, y, const, ensemble, **settings)[2](carry)


def _optimize_host(logits_fn, x, y, const, best_l2, best_adv, ensemble, **settings):
  """The same step with the body jitted alone and the loop in Python (loop="host"): on XLA:CPU
  a model's backward convolutions inside a lax loop run a slower generic kernel. Whether any
  example is still active is read back only every `check_every` iterations (the only points
  where an example can stop), so dispatch stays asynchronous; iterations after every example
  stopped change nothing (updates are masked), as in the while_loop."""
  carry = _host_init(logits_fn, x, y, const, best_l2, best_adv, ensemble, **settings)
  check_every = _check_every(settings["max_iterations"])
  for it in probe.steps(settings["max_iterations"], "CW-L2 iterations", bound=True):
    if (it > 1 and (it - 1) % check_every == 0 and probe.stops_early()
        and not np.any(sharding.to_host(carry[3]))):
      break
    carry = _host_body(logits_fn, carry, x, y, const, ensemble, **settings)
  *_, best_l2, best_adv, ok = carry
  return best_l2, best_adv, ok


def carlini_wagner_l2(logits_fn, x, y, *, bounds, confidence=0.0, binary_search_steps=4,
                      max_iterations=1000, learning_rate=1e-2, initial_const=1e-2,
                      abort_early=True, targeted=False, ensemble=None,
                      batch_size: int | None = None,
                      abort_early_scope: str = "example",
                      distortion_weight: float = 1.0, loop: str | None = None) -> AttackResult:
  """Carlini & Wagner's L2 attack (optionally against an ensemble of fixed perturbations).

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    x: float32 [N, *image_shape] inside bounds.
    y: int32 [N]; true labels (untargeted) or targets (targeted).
    bounds: (low, high).
    confidence: kappa, the logit margin required for success.
    binary_search_steps: number of values of c tried per example.
    max_iterations: Adam iterations per binary-search step.
    learning_rate: Adam learning rate on w.
    initial_const: first c.
    abort_early: stop an example's step once its loss stops falling (checked every
      max_iterations // 10 iterations: loss > 0.9999 * loss at the previous check).
    targeted: make y the predicted class instead of any other class.
    ensemble: optional float32 [E, *image_shape] fixed perturbations v_i; the loss sums the
      margin terms of logits_fn(clip(x' + v_i)) and success needs every member fooled.
    batch_size: images per compiled call (the model sees batch_size * E inputs); default all.
    abort_early_scope: "example" (default): each example stops on its own loss, so its result
      does not depend on which other images share its batch; "batch": the whole chunk stops
      when its summed loss stalls, as in Carlini & Wagner's code and Foolbox.
    distortion_weight: w in  w * |x' - x|^2 + c * margins  (1: the paper's objective). He et
      al.'s released OPTMARGIN code divides the squared L2 by 255^2: on CIFAR-10 in [0, 255]
      that measures L2 on the [0, 1] scale (the scale its c0 = 1 was chosen for); on MNIST in
      [0, 1] it weakens the distortion term 65,025-fold (see presets "optmargin_released").
    loop: "device" (each binary-search step one compiled lax.while_loop) or "host" (one
      jitted iteration driven from Python); default "host" on CPU, "device" elsewhere. Both
      give the same result (see benchmarks/attacks.py for their speed).

  Returns:
    AttackResult: the lowest-L2 successful example found per image (the input where none),
    success bool [N], distortions.
  """
  low, high, n = checks.check_attack_inputs(x, y, bounds)
  checks.check_positive(confidence, "confidence", allow_zero=True)
  checks.check_positive(binary_search_steps, "binary_search_steps", integer=True)
  checks.check_positive(max_iterations, "max_iterations", integer=True)
  checks.check_positive(learning_rate, "learning_rate")
  checks.check_positive(initial_const, "initial_const")
  checks.check_positive(distortion_weight, "distortion_weight")
  loop = checks.loop_mode(loop)
  if abort_early_scope not in ("example", "batch"):
    raise ValueError(f"abort_early_scope must be 'example' or 'batch', got {abort_early_scope!r}")
  x = np.asarray(x, np.float32)
  if ensemble is None:
    ensemble = np.zeros((1,) + x.shape[1:], np.float32)
  ensemble = np.asarray(ensemble, np.float32)
  if ensemble.ndim != x.ndim or ensemble.shape[1:] != x.shape[1:] or ensemble.shape[0] < 1:
    raise ValueError(f"ensemble must have shape [E, {', '.join(map(str, x.shape[1:]))}], "
                     f"got {ensemble.shape}")
  fn = as_pytree_fn(logits_fn)
  optimize = functools.partial(
      _optimize if loop == "device" else _optimize_host, fn,
      ensemble=sharding.replicate(jnp.asarray(ensemble)), low=low, high=high,
      confidence=float(confidence), max_iterations=int(max_iterations),
      learning_rate=float(learning_rate), abort_early=bool(abort_early),
      targeted=bool(targeted), abort_early_scope=abort_early_scope,
      distortion_weight=float(distortion_weight))

  def attack_chunk(xc, yc):
    m = xc.shape[0]
    const = np.full(m, initial_const, np.float32)
    lower, upper = np.zeros(m, np.float32), np.full(m, _BIG, np.float32)
    best_l2, best_adv = jnp.full(m, jnp.inf, jnp.float32), xc
    for step in probe.steps(binary_search_steps, "CW-L2 binary search"):
      best_l2, best_adv, ok = optimize(xc, yc, jnp.asarray(const), best_l2, best_adv)
      ok = sharding.to_host(ok)
      upper = np.where(ok, np.minimum(upper, const), upper)
      lower = np.where(ok, lower, np.maximum(lower, const))
      const = np.where(upper < _BIG, (lower + upper) / 2, const * 10).astype(np.float32)
      logging.log_every_n_seconds(logging.INFO, "CW-L2: binary-search step %d/%d, %d/%d found",
                                  10, step + 1, binary_search_steps,
                                  int(np.sum(np.isfinite(sharding.to_host(best_l2)))), m)
    return best_adv, jnp.isfinite(best_l2)

  adv, success = batching.map_chunks(attack_chunk, x, np.asarray(y), chunk_size=batch_size or n,
                                     desc="CW-L2")
  return make_result(jnp.asarray(x), jnp.asarray(adv), jnp.asarray(success))
