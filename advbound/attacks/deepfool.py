"""DeepFool (Moosavi-Dezfooli et al., 2016): iterated steps to the nearest linearised boundary.

At the current point x_i, with c the clean prediction and classes k among the candidates,

  l = argmin_k |f_k - f_c| / |w_k - w_c|_q,   w_k = grad f_k(x_i),  q = 2 (L2) or 1 (L-inf),
  r_i = (|f_l - f_c| / |w_l - w_c|_q + 1e-4) * u,   u = w / |w|_2 (L2) or sign(w) (L-inf),

and x_{i+1} = clip(x + (1 + overshoot) * sum_i r_i, bounds): the overshoot scales the TOTAL
perturbation, as in the authors' code and Foolbox, whose semantics this follows step for step
(logit differences, the top-k candidates of the clean logits, +1e-4 and +1e-8 for stability,
the unclipped running sum). An example stops once it is misclassified (frozen by a per-example
mask); the others go on until every example is done or after max_iterations steps. The K - 1
class gradients come from one forward pass and one vmapped backward pass (vjp over the K - 1
one-hot cotangent differences).

Two drivers run the same iteration body (`_iterate`, state in, state out), chosen by `loop`:
"device" compiles the whole attack as one `lax.while_loop` (no host round trip per step: meant
for GPU/TPU, not measured there); "host" compiles the body alone as a step function (once per
shape) and loops in Python, checking on the host before each step whether any example is still
active. The default is "host" on XLA's CPU backend and "device" elsewhere, because XLA-CPU
converts convolutions to its fast Eigen form only at the top level of a program: inside any lax
loop a model's backward (input-gradient) convolutions run in its slower generic emitter.
Measured with benchmarks/deepfool.py (quickstart MnistCNN, 100 images, 10 candidates, 2 loaded
cores, warm): "host" took 0.7x the CPU time of "device" for L2 and L-inf alike, and 1/1.4 (L2)
and 1/1.1 (L-inf) of Foolbox's, where "device" took 1.0x (L2) and 1.3x (L-inf) Foolbox's. With
the same ops but different kernels, the two drivers agree to float rounding (there: the same
successes, adversarials within 1e-4); on models without convolutions they were bit-identical.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from advbound.attacks.result import AttackResult, make_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, sharding

_STEP_EPS = 1e-4  # added to the step length (the authors' code and Foolbox)
_NORM_EPS = 1e-8  # added to gradient norms before dividing (Foolbox)


@jax.jit
def _logits(logits_fn, x):
  """logits_fn(x); used only through eval_shape (cached: no retrace on repeated calls)."""
  return logits_fn(x)


def _start(logits_fn, x, y, candidates):
  """The per-chunk constants and the initial loop state (traced inside the jitted callers).

  Args:
    x: float32 [n, ...]; y: int32 [n]; candidates: static k.

  Returns:
    (consts, state): consts = (origin int32 [n, 1] (the clean prediction), others int32
    [n, k - 1] (the other top-k clean classes), cotangents [k - 1, n, K] (one-hots of f_k - f_c));
    state = (xi [n, ...] (the current iterate, x), total [n, ...] (the unclipped running sum
    of steps, 0), active bool [n] (still classified as y), steps int32 [n] (0)).
  """
  n = x.shape[0]
  logits0 = logits_fn(x)
  num_classes = logits0.shape[-1]
  _, classes = jax.lax.top_k(logits0, candidates)  # [n, k]; classes[:, 0] = clean prediction
  origin, others = classes[:, :1], classes[:, 1:]
  cotangents = (jax.nn.one_hot(others.T, num_classes, dtype=x.dtype)
                - jax.nn.one_hot(origin[:, 0], num_classes, dtype=x.dtype)[None])
  active = jnp.argmax(logits0, -1) == y  # misclassified inputs are done before the first step
  state = (x, jnp.zeros_like(x), active, jnp.zeros(n, jnp.int32))
  return (origin, others, cotangents), state


def _iterate(logits_fn, x, y, overshoot, consts, state, low, high, norm, candidates):
  """One DeepFool step of every active example; inactive ones are frozen. The one iteration body
  of both loops (device: inside lax.while_loop; host: jitted alone as _host_step).

  Args:
    x: float32 [n, ...] the clean inputs; y: int32 [n]; overshoot: scalar; consts, state: as
    returned by _start; low, high, norm, candidates: static.

  Returns:
    The next state (xi, total, active, steps), shapes and dtypes as the input state.
  """
  origin, others, cotangents = consts
  xi, total, active, steps = state
  n = x.shape[0]
  expand = lambda v: v.reshape((-1,) + (1,) * (x.ndim - 1))
  rows = jnp.arange(n)
  logits, vjp = jax.vjp(logits_fn, xi)
  grads, = jax.vmap(vjp)(cotangents)                        # [k - 1, n, ...]
  losses = (jnp.take_along_axis(logits, others, 1)
            - jnp.take_along_axis(logits, origin, 1))       # [n, k - 1]
  flat = grads.reshape(candidates - 1, n, -1)
  if norm == "l2":
    gnorm = jnp.sqrt(jnp.sum(jnp.square(flat), -1)).T       # [n, k - 1]
  else:
    gnorm = jnp.sum(jnp.abs(flat), -1).T
  distance = jnp.abs(losses) / (gnorm + _NORM_EPS)
  best = jnp.argmin(distance, 1)
  length = distance[rows, best] + _STEP_EPS                 # [n]
  w = grads[best, rows]                                     # [n, ...]
  if norm == "l2":
    step = expand(length / (gnorm[rows, best] + _NORM_EPS)) * w
  else:
    step = expand(length) * jnp.sign(w)
  mask = expand(active)
  total = jnp.where(mask, total + step, total)
  xi = jnp.where(mask, jnp.clip(x + (1.0 + overshoot) * total, low, high), xi)
  steps = steps + active.astype(jnp.int32)
  active = active & (jnp.argmax(logits_fn(xi), -1) == y)
  return xi, total, active, steps


_STATIC = ("low", "high", "norm", "candidates")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _deepfool_device(logits_fn, x, y, overshoot, max_iterations, *, low, high, norm,
                     candidates):
  """DeepFool on one chunk as one compiled lax.while_loop (loop="device").

  Args:
    x: float32 [n, ...]; y: int32 [n]; overshoot, max_iterations: traced scalars (changing them
    does not recompile); candidates: static k, the number of top clean classes considered.

  Returns:
    (adversarial [n, ...] (the last iterate, clipped), success bool [n] (its prediction != y),
    iterations int32 [n] (steps taken by each example)).
  """
  consts, state = _start(logits_fn, x, y, candidates)

  def cond(carry):
    it, (_, _, active, _) = carry
    return (it < max_iterations) & jnp.any(active)

  def body(carry):
    it, state = carry
    return it + 1, _iterate(logits_fn, x, y, overshoot, consts, state, low, high, norm,
                            candidates)

  _, (adv, _, active, steps) = jax.lax.while_loop(cond, body, (jnp.int32(0), state))
  # an example stays active exactly while its current iterate is classified as y (inactive ones
  # are frozen), so success = ~active without another forward pass
  return adv, ~active, steps


_host_start = jax.jit(_start, static_argnames=("candidates",))
_host_step = jax.jit(_iterate, static_argnames=_STATIC)


def _deepfool_host(logits_fn, x, y, overshoot, max_iterations, *, low, high, norm,
                   candidates):
  """DeepFool on one chunk (loop="host"): _iterate jitted alone (compiled once per shape),
  driven from Python until every example is done or after max_iterations steps. Arguments and
  results as _deepfool_device (max_iterations: a Python int)."""
  consts, state = _host_start(logits_fn, x, y, candidates=candidates)
  for _ in range(max_iterations):  # not probed: it stops when every example is fooled
    if not np.any(sharding.to_host(state[2])):  # the while_loop's condition, on the host
      break
    state = _host_step(logits_fn, x, y, overshoot, consts, state, low=low, high=high, norm=norm,
                       candidates=candidates)
  adv, _, active, steps = state
  return adv, ~active, steps


def deepfool(logits_fn, x, y, *, bounds, norm="l2", overshoot=0.02, max_iterations=50,
             candidates=None, batch_size: int | None = None,
             loop: str | None = None) -> AttackResult:
  """Untargeted DeepFool in L2 or L-inf.

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    x: float32 [N, *image_shape] inside bounds.
    y: int32 [N] true labels in [0, K). An input already classified != y is returned as it is,
      successful with distortion 0 (no step is taken).
    bounds: (low, high); every iterate is clipped to them.
    norm: "l2" or "linf".
    overshoot: >= 0; the returned point is clip(x + (1 + overshoot) * r_total).
    max_iterations: most steps per example (int >= 1).
    candidates: None (all K classes) or k in [2, K]: only the k classes with the largest clean
      logits (the clean prediction included) are considered, as Foolbox's `candidates`.
    batch_size: images per compiled call; default all. Each call holds (k - 1) gradients per
      image (the backward pass runs on (k - 1) * batch_size inputs at once). An example's
      result does not depend on which other images share its chunk (up to float rounding).
    loop: how the iterations run (the same iteration body, so the same results up to float
      rounding): "device", one compiled lax.while_loop (no host round trip per step; best on
      GPU/TPU); "host", the step compiled alone and driven from Python, which checks on the
      host before each step whether any example is still active (faster on XLA's CPU backend,
      see the module docstring); None: "host" when jax.default_backend() == "cpu", else
      "device".

  Returns:
    AttackResult: the final iterate where its prediction differs from y (the input where the
    attack failed within max_iterations), success bool [N], distortions.
  """
  if norm not in ("l2", "linf"):
    raise ValueError(f"unknown norm {norm!r}; expected 'l2' or 'linf'")
  loop = checks.loop_mode(loop)
  low, high = checks.check_bounds(bounds)
  checks.check_images(x, bounds)
  n = np.shape(x)[0]
  checks.check_positive(overshoot, "overshoot", allow_zero=True)
  checks.check_positive(max_iterations, "max_iterations", integer=True)
  if batch_size is not None:
    checks.check_positive(batch_size, "batch_size", integer=True)
  x = np.asarray(x, np.float32)
  fn = as_pytree_fn(logits_fn)
  out = jax.eval_shape(_logits, fn, jax.ShapeDtypeStruct((1,) + x.shape[1:], jnp.float32))
  if len(out.shape) != 2:
    raise ValueError(f"logits_fn must return logits [N, K], got shape {out.shape}")
  num_classes = out.shape[1]
  checks.check_labels(y, n, num_classes)
  if candidates is None:
    candidates = num_classes
  if (isinstance(candidates, bool) or not isinstance(candidates, (int, np.integer))
      or not 2 <= candidates <= num_classes):
    raise ValueError(f"candidates must be None or an int in [2, {num_classes}] (the number of "
                     f"classes), got {candidates!r}")
  device = loop == "device"
  # device: max_iterations traced (changing it does not recompile); host: the Python loop's bound
  attack = functools.partial(_deepfool_device if device else _deepfool_host, fn,
                             overshoot=jnp.float32(overshoot),
                             max_iterations=jnp.int32(max_iterations) if device
                             else int(max_iterations),
                             low=low, high=high, norm=norm, candidates=int(candidates))
  name = f"DeepFool-{'L2' if norm == 'l2' else 'Linf'}"

  def attack_chunk(xc, yc):
    adv, success, steps = attack(xc, yc)
    logging.log_every_n_seconds(logging.INFO, "%s: %d/%d fooled, at most %d steps", 10, name,
                                int(np.sum(sharding.to_host(success))), xc.shape[0],
                                int(np.max(sharding.to_host(steps))))
    return adv, success

  adv, success = batching.map_chunks(attack_chunk, x, np.asarray(y, np.int32),
                                     chunk_size=batch_size or n, desc=name)
  return make_result(jnp.asarray(x), jnp.asarray(adv), jnp.asarray(success))
