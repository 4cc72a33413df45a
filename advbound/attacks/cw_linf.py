"""Carlini & Wagner's L-inf attack as their released code (nn_robust_attacks, li_attack.py) runs it.

For a threshold tau, minimize  c * f(x') + sum_i max(|x'_i - x_i| - tau, 0)  over x' = tanh box(w)
f = max(max_{j != t} Z_j - Z_t + kappa, 0) (targeted; untargeted: max(Z_y - max_{j != y} Z_j +
kappa, 0)). Per image, sequentially in the released code:

  tau = 1 (the whole range), c = INITIAL_CONST, prev = the start (the image itself there)
  while tau > 1/256:
    Adam from w = atanh(prev) (fresh modifier and Adam state); for c = c, 2c, ... < LARGEST_CONST
    (w and the Adam state carry on from one c to the next) run up to MAX_ITERATIONS steps; a step
    whose loss (before the update) is < 1e-4 * c and whose updated iterate is classified as wanted
    ends the search with that iterate
    if no c worked: stop (the answer is prev; the input itself if no tau ever worked)
    c stays at the value that worked (halved with REDUCE_CONST)
    tau = min(tau, L-inf of the iterate from the image) * DECREASE_FACTOR; prev = the iterate

Here every image of a batch runs that program as its own state machine inside one compiled
`lax.while_loop` (per-example tau, c, iteration counter, w and Adam moments), so an image that
moves on to its next tau or c never waits for the others; the host only calls the compiled loop
again every `_ITERATIONS_PER_CALL` iterations to log progress and, once at most half of the
batch is still running, to continue with those images alone (a batch of the next power of two),
until every image has finished.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from advbound.attacks.cw import _margins
from advbound.attacks.result import AttackResult, make_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, sharding

_ITERATIONS_PER_CALL = 1000  # compiled iterations between two progress reports
_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8  # tf.train.AdamOptimizer's defaults


def _expand(v, ndim):
  """[n] -> [n, 1, ..., 1] with ndim dimensions in all."""
  return v.reshape((-1,) + (1,) * (ndim - 1))


@functools.partial(jax.jit, static_argnums=(5,))
def _advance(logits_fn, x, y, state, params, iterations):
  """Runs every unfinished example's state machine for up to `iterations` iterations.

  Args (a chunk of n images):
    x: float32 [n, ...]; y: int32 [n]; state: the dict of `_initial_state` (per-example arrays);
    params: dict of traced scalars (low, high, confidence, max_iterations, learning_rate,
      largest_const, decrease_factor, const_factor, min_tau, stop_below, and the flags targeted,
      reduce_const, abort_early), so that new settings reuse the compiled loop.

  Returns:
    the updated state.
  """
  p = params
  confidence, max_iterations = p["confidence"], p["max_iterations"]
  mul, plus = (p["high"] - p["low"]) / 2, (p["high"] + p["low"]) / 2
  to_w = lambda z: jnp.arctanh((z - plus) / mul * 0.999999)
  x0 = jnp.tanh(to_w(x)) * mul + plus  # the image as the tanh box represents it (their timg)
  nd = x.ndim

  def margin_loss(w):
    xp = jnp.tanh(w) * mul + plus
    margin = _margins(logits_fn(xp), y, False)  # Z_y - max_{j != y} Z_j, [n]
    margin = jnp.where(p["targeted"], -margin, margin)
    return jnp.sum(jnp.maximum(margin + confidence, 0.0)), (margin, xp)

  def cond(carry):
    it, s = carry
    return (it < iterations) & jnp.any(~s["done"])

  def body(carry):
    it, s = carry
    done, tau, const, step, w = s["done"], s["tau"], s["const"], s["step"], s["w"]
    g1, (margin, xp) = jax.grad(margin_loss, has_aux=True)(w)
    loss1 = jnp.maximum(margin + confidence, 0.0)
    excess = jnp.abs(xp - x0) - _expand(tau, nd)
    loss2 = jnp.sum(jnp.maximum(excess, 0.0).reshape(x.shape[0], -1), -1)
    # d loss2 / dw, in closed form (the model's backward pass is needed for loss1 only)
    g2 = jnp.where(excess > 0, jnp.sign(xp - x0), 0.0) * mul * (1 - jnp.square(jnp.tanh(w)))
    fooled = margin + confidence < 0.0

    # 1) the previous step's loss was below 1e-4 c and this (updated) iterate is adversarial:
    #    success at this tau
    success = ~done & s["pending"] & fooled
    actual = jnp.max(jnp.abs(xp - x).reshape(x.shape[0], -1), -1)
    new_tau = jnp.minimum(tau, actual) * p["decrease_factor"]
    # 2) this c ran out of iterations: the next c continues from the current w and Adam state
    exhausted = ~done & ~success & (step >= max_iterations)
    const = jnp.where(exhausted, const * p["const_factor"], const)
    gave_up = exhausted & (const >= p["largest_const"])
    running = ~done & ~success & ~gave_up
    step = jnp.where(exhausted, 0, step)

    # 3) one Adam step (TF's formulation) for the running examples
    loss = const * loss1 + loss2
    grad = _expand(const, nd) * g1 + g2
    t = s["t"] + 1
    m = _BETA1 * s["m"] + (1 - _BETA1) * grad
    v = _BETA2 * s["v"] + (1 - _BETA2) * jnp.square(grad)
    lr_t = p["learning_rate"] * jnp.sqrt(1 - _BETA2 ** t) / (1 - _BETA1 ** t)
    w_new = w - _expand(lr_t, nd) * m / (jnp.sqrt(v) + _ADAM_EPS)
    check = p["abort_early"] | (step == max_iterations - 1)
    pending = running & (loss < 1e-4 * const) & check

    r, sc = _expand(running, nd), _expand(success, nd)
    prev = jnp.where(sc, xp, s["prev"])
    new = dict(
        done=done | gave_up | (success & ((new_tau <= p["min_tau"])
                                          | (actual <= p["stop_below"]))),
        found=s["found"] | success,
        tau=jnp.where(success, new_tau, tau),
        const=jnp.where(success & p["reduce_const"], const / 2, const),
        step=jnp.where(running, step + 1, 0),
        pending=pending,
        prev=prev,
        # a success restarts from the new example with a fresh modifier and Adam state
        w=jnp.where(r, w_new, jnp.where(sc, to_w(prev), w)),
        m=jnp.where(r, m, jnp.where(sc, 0.0, s["m"])),
        v=jnp.where(r, v, jnp.where(sc, 0.0, s["v"])),
        t=jnp.where(running, t, jnp.where(success, 0, s["t"])),
        iterations=s["iterations"] + (~done).astype(jnp.int32),
    )
    return it + 1, new

  _, state = jax.lax.while_loop(cond, body, (jnp.int32(0), state))
  return state


def _scatter(state, rows, work):
  """state with its rows `rows` [m] replaced by the working batch `work` (leading size m)."""
  return jax.tree.map(lambda a, b: a.at[rows].set(b), state, work)


def _initial_state(start, low, high, initial_const):
  """Per-example state of n examples starting at `start` [n, ...]."""
  n = start.shape[0]
  mul, plus = (high - low) / 2, (high + low) / 2
  w = jnp.arctanh((start - plus) / mul * 0.999999)
  zeros = jnp.zeros_like(start)
  return dict(done=jnp.zeros(n, bool), found=jnp.zeros(n, bool),
              tau=jnp.full(n, high - low, jnp.float32),
              const=jnp.full(n, initial_const, jnp.float32), step=jnp.zeros(n, jnp.int32),
              pending=jnp.zeros(n, bool), prev=start, w=w, m=zeros, v=zeros,
              t=jnp.zeros(n, jnp.int32), iterations=jnp.zeros(n, jnp.int32))


def carlini_wagner_linf(logits_fn, x, y, *, bounds, targeted=False, confidence=0.0, start=None,
                        batch_size: int | None = None, max_iterations=1000, learning_rate=5e-3,
                        initial_const=1e-5, largest_const=2e1, const_factor=2.0,
                        decrease_factor=0.9, reduce_const=False,
                        abort_early=True, stop_below: float | None = None) -> AttackResult:
  """Carlini & Wagner's L-inf attack with the released code's loop and defaults.

  Defaults (li_attack.py): MAX_ITERATIONS 1000, LEARNING_RATE 5e-3, INITIAL_CONST 1e-5,
  LARGEST_CONST 2e1, CONST_FACTOR 2, DECREASE_FACTOR 0.9, REDUCE_CONST False, ABORT_EARLY True.
  Their images lie in [-0.5, 0.5]; tau and its end point are fractions of that range, so here
  tau starts at (high - low) and the search stops once tau <= (high - low) / 256.

  Departures from the released code: (1) `confidence` (kappa, absent there) enters the loss as
  in CW-L2 and success then needs the margin to exceed it (with kappa = 0: the argmax, ties not
  counting); (2) abort_early=False checks for success at the last iteration of each c (the
  released code's test `step == CONST - 1` can never hold, so it always failed); (3) a failed
  image returns the input with success False (theirs returned the last image tried); (4) `start`
  (theirs always started from the image).

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    x: float32 [N, *image_shape] inside bounds.
    y: int32 [N]; true labels (untargeted) or targets (targeted).
    bounds: (low, high).
    targeted: make y the predicted class instead of any other class.
    confidence: kappa >= 0, the logit margin required for success.
    start: optional float [N, *image_shape] or [*image_shape] (broadcast to the batch): the point
      the first optimisation starts from instead of x (e.g. noise around x or a grey image, as in
      the blind-spot paper); clipped into bounds (the tanh box holds nothing outside).
      Distortions are still measured from x, and tau bounds |x' - x|.
    batch_size: images per compiled call; default all.
    max_iterations: Adam iterations per value of c.
    learning_rate: Adam learning rate on w.
    initial_const: the first c (> 0, < largest_const).
    largest_const: give up on a tau once c reaches this.
    const_factor: c's growth factor after a failed c (> 1).
    decrease_factor: tau's shrink factor after a success (in (0, 1)).
    reduce_const: halve c after each success.
    abort_early: stop an optimisation at the first valid iterate (see above).
    stop_below: end an image's search at its first example whose L-inf distortion from x is at
      most this (all that deciding success at that threshold needs: the blind-spot study's
      quick configs stop at their strictest threshold); None: the released end point, tau
      <= (high - low) / 256, so the distortion is as small as the search gets.

  Returns:
    AttackResult: per image the last successful example (the one of the smallest tau reached),
    the input where no tau succeeded; success bool [N]; distortions from x.
  """
  low, high, n = checks.check_attack_inputs(x, y, bounds, batch_size=batch_size)
  checks.check_positive(confidence, "confidence", allow_zero=True)
  checks.check_positive(max_iterations, "max_iterations", integer=True)
  checks.check_positive(learning_rate, "learning_rate")
  checks.check_positive(initial_const, "initial_const")
  checks.check_positive(largest_const, "largest_const")
  checks.check_positive(const_factor, "const_factor")
  checks.check_positive(decrease_factor, "decrease_factor")
  if initial_const >= largest_const:
    raise ValueError(f"initial_const must be < largest_const ({largest_const}), "
                     f"got {initial_const!r}")
  if const_factor <= 1:
    raise ValueError(f"const_factor must be > 1, got {const_factor!r}")
  if stop_below is not None:
    checks.check_positive(stop_below, "stop_below")
  if decrease_factor >= 1:
    raise ValueError(f"decrease_factor must be in (0, 1), got {decrease_factor!r}")
  x = np.asarray(x, np.float32)
  if start is None:
    start = x
  start = np.asarray(start, np.float32)
  if start.shape not in (x.shape, x.shape[1:]):
    raise ValueError(f"start must have shape {x.shape} or {x.shape[1:]}, got {start.shape}")
  if not np.all(np.isfinite(start)):
    raise ValueError("start contains NaN or inf")
  start = np.broadcast_to(start, x.shape)
  start = np.clip(start, low, high)

  params = dict(low=jnp.float32(low), high=jnp.float32(high),
                confidence=jnp.float32(confidence), max_iterations=jnp.int32(max_iterations),
                learning_rate=jnp.float32(learning_rate),
                largest_const=jnp.float32(largest_const),
                decrease_factor=jnp.float32(decrease_factor),
                const_factor=jnp.float32(const_factor), min_tau=jnp.float32((high - low) / 256),
                targeted=jnp.bool_(targeted), reduce_const=jnp.bool_(reduce_const),
                abort_early=jnp.bool_(abort_early),
                stop_below=jnp.float32(-1.0 if stop_below is None else stop_below))
  advance = functools.partial(_advance, as_pytree_fn(logits_fn), params=params,
                              iterations=_ITERATIONS_PER_CALL)
  # a safe bound on one image's iterations: each tau (at most ~log(256) / log(1 / decrease)
  # successes) runs each c at most once (c never falls below initial_const / 2^num_tau), each
  # for max_iterations + 1 iterations
  num_tau = math.ceil(math.log(256) / -math.log(decrease_factor)) + 1
  num_const = math.ceil(math.log(largest_const / initial_const) / math.log(const_factor)) + 1
  if reduce_const:
    num_const += num_tau * math.ceil(math.log(2) / math.log(const_factor))
  max_calls = -(-num_tau * num_const * (max_iterations + 1) // _ITERATIONS_PER_CALL) + 1

  def attack_chunk(xc, yc, sc):
    state = _initial_state(sc, low, high, initial_const)
    rows = np.arange(xc.shape[0])  # the chunk's rows in the working batch
    work, wx, wy = state, xc, yc
    for call in range(max_calls):
      work = advance(wx, wy, work)
      done = sharding.to_host(work["done"])
      live = np.unique(rows[~done])
      logging.log_every_n_seconds(
          logging.INFO, "CW-Linf: %d iterations, %d/%d images finished", 10,
          (call + 1) * _ITERATIONS_PER_CALL, xc.shape[0] - live.size, xc.shape[0])
      if not live.size:
        break
      if live.size <= rows.size // 2:
        # compact: the unfinished rows continue in a batch of the next power of two (padded
        # with repeats, which evolve identically), so finished images cost nothing
        state = _scatter(state, rows, work)
        size = 1 << (int(live.size) - 1).bit_length()
        rows = np.concatenate([live, np.full(size - live.size, live[-1])])
        work, wx, wy = jax.tree.map(lambda a: a[rows], state), xc[rows], yc[rows]
    else:
      raise RuntimeError("CW-Linf did not finish within its iteration bound")  # cannot happen
    state = _scatter(state, rows, work)
    its = sharding.to_host(state["iterations"])
    logging.info("CW-Linf: Adam iterations per image: median %d, max %d", np.median(its),
                 its.max())
    return state["prev"], state["found"]

  adv, success = batching.map_chunks(attack_chunk, x, np.asarray(y), start,
                                     chunk_size=batch_size or n, desc="CW-Linf")
  return make_result(jnp.asarray(x), jnp.asarray(adv), jnp.asarray(success))
