"""Carlini & Wagner's L0 attack, as their released code (nn_robust_attacks, l0_attack.py) runs it.

Per image: a CW-L2-style Adam optimization over the still-free ("valid") pixels, the others held
at their original values,

  minimize  c * max(Z-margin + confidence + 0.01, 0) + |x' - x|_2^2,
  x' = tanh(w + s) / 2 on valid pixels, x elsewhere  (in the code's [-0.5, 0.5] coordinates),

warm-started at the previous solution (s = atanh(previous), w = 0, fresh Adam), with c multiplied
by CONST_FACTOR after every MAX_ITERATIONS iterations without success until it reaches
LARGEST_CONST. A round succeeds at its first iterate whose hinge term is below 1e-4. After each
success the pixels are scored by |change| * |d loss / dw| (summed over the channels of a pixel:
|sum_c change_c| * sum_c |g_c|) and, in increasing order of score, pixels are fixed (removed from
valid) while their score is <= 0.01, at least one and at most ceil(0.3 sqrt(#changed pixels)) per
round; the next round starts at the same c. The attack returns the last successful round's
example once a round fails.

Batching: every image of a chunk runs its own copy of that state machine (valid mask, c, Adam
state, iteration counter, round) inside one compiled `lax.while_loop`; an image that finishes a
round starts its next round at the next iteration, independently of the others, so a chunk costs
its slowest image, not the sum over rounds of the slowest round. The loop is advanced in calls of
`iterations_per_call` iterations, with progress logged between calls.

Where this departs from the released code (each image otherwise takes the same steps;
tests/cw_l0_test.py compares with a line-by-line port):
- any `bounds`: the work is done in the code's coordinates x_r = (x - low) / (high - low) - 0.5;
- an input that already passes the success test is returned at once (the code would fix one
  pixel per round until none is left and then return the input: the same answer);
- a first round that fails returns the input with success False (the code returns None);
- abort_early=False succeeds at the last iterate of a c (the code's `step == CONST - 1` never
  holds);
- pixels of equal score are fixed lowest index first (a stable sort; numpy's default sort in
  the code leaves that order unspecified);
- confidence (not in the code) is added to its fixed 0.01 hinge offset;
- returned values within 1e-6 * (high - low) of the input (the tanh box's rounding of pixels
  that never moved) are reset to the input, so that the L0 counts only real changes; success
  is judged by the model at the returned point.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from advbound.attacks.cw import _margins
from advbound.attacks.result import AttackResult, make_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, sharding

# Fixed numbers of the released code (in its [-0.5, 0.5] coordinates).
_OFFSET = 0.01        # the hinge is max(margin + 0.01, 0): success never rests on a tie
_SUCCESS = 1e-4       # an iterate succeeds when its hinge is below this
_EQUAL = 1e-4         # a pixel counts as changed when a channel moved by at least this
_SMALL_SCORE = 0.01   # pixels with a score up to this are fixed together
_FRACTION = 0.3       # at most ceil(0.3 sqrt(#changed pixels)) pixels fixed per round
_TANH_SCALE = 1.999999  # atanh(2 x * 0.9999995) keeps the box's ends finite
# Adam as in TensorFlow 1's AdamOptimizer (the released code's optimizer).
_BETA1, _BETA2, _EPSILON = 0.9, 0.999, 1e-8
# Returned changes below this fraction of the range are the tanh box's rounding; they are reset.
_SNAP = 1e-6


def _pixels(a, grouped, reduce):
  """[n, *shape] -> [n, P]: channels (last axis) reduced with `reduce` when grouped."""
  if grouped:
    a = reduce(a, axis=-1)
  return a.reshape(a.shape[0], -1)


def fix_pixels(change, grads, valid, grouped):
  """The released code's choice of pixels to fix after a successful round.

  Args:
    change: float32 [n, *shape], x' - x in [-0.5, 0.5] coordinates.
    grads: float32 [n, *shape], d loss / dw at x'.
    valid: bool [n, *shape], the pixels the round could change (constant over channels when
      grouped).
    grouped: channels (last axis of [n, H, W, C]) form one pixel.

  Returns:
    bool [n, *shape]: the new valid mask.
  """
  n = change.shape[0]
  if grouped:
    score = jnp.abs(change.sum(-1)) * jnp.abs(grads).sum(-1)
  else:
    score = jnp.abs(change) * jnp.abs(grads)
  score = score.reshape(n, -1)
  free = _pixels(valid, grouped, jnp.all)
  # "equal_count" of the released code: pixels with some channel changed by >= 1e-4 (pixels
  # are (H, W) positions for [n, H, W, C] images, whatever independent_channels says)
  pixel_changed = (jnp.abs(change) >= _EQUAL)
  if change.ndim == 4:
    pixel_changed = pixel_changed.any(-1)
  changed = pixel_changed.reshape(n, -1).sum(-1)
  order = jnp.argsort(jnp.where(free, score, jnp.inf), axis=1, stable=True)
  ranked = jnp.take_along_axis(jnp.where(free, score, jnp.inf), order, 1)
  num_free = free.sum(-1)
  # fixing stops after the first pixel with a score > 0.01 ...
  big = ranked > _SMALL_SCORE
  upto_big = jnp.where(big.any(-1), jnp.argmax(big, -1) + 1, ranked.shape[1])
  # ... or once `did >= 0.3 sqrt(changed)`: the smallest integer k >= 1 with 100 k^2 >= 9 changed
  cap = jnp.ceil(_FRACTION * jnp.sqrt(changed.astype(jnp.float32))).astype(jnp.int32)
  cap = jnp.where(100 * (cap - 1) ** 2 >= 9 * changed, cap - 1, cap)
  cap = jnp.where(100 * cap ** 2 < 9 * changed, cap + 1, cap)
  count = jnp.minimum(jnp.minimum(upto_big, jnp.maximum(cap, 1)), num_free)
  rank = jnp.argsort(order, axis=1)
  keep = free & (rank >= count[:, None])
  if grouped:
    keep = jnp.broadcast_to(keep.reshape(change.shape[:-1] + (1,)), change.shape)
  return keep.reshape(change.shape)


@functools.partial(jax.jit, static_argnums=(5, 6, 7, 8, 9, 10))
def _advance(logits_fn, xr, y, state, settings, low, high, targeted, abort_early, reduce_const,
             grouped):
  """Runs every active example's state machine for up to `iterations_per_call` iterations.

  Args (chunk of n images): xr: float32 [n, ...], the images in [-0.5, 0.5] coordinates;
    y: int32 [n]; state: dict of per-example arrays (see `_initial_state`); settings: dict of
    scalars (confidence, max_iterations, learning_rate, largest_const, const_factor,
    iterations_per_call), traced so that changing them does not recompile.

  Returns:
    The state after the iterations (or once no example is active).
  """
  confidence, max_iterations = settings["confidence"], settings["max_iterations"]
  learning_rate, largest_const = settings["learning_rate"], settings["largest_const"]
  const_factor, iterations_per_call = settings["const_factor"], settings["iterations_per_call"]
  expand = lambda v: v.reshape((-1,) + (1,) * (xr.ndim - 1))
  x0 = jnp.tanh(jnp.arctanh(xr * _TANH_SCALE)) / 2  # x as the tanh box represents it

  def losses(w, start, valid, const):
    new = jnp.where(valid, jnp.tanh(w + start) / 2, xr)
    logits = logits_fn((new + 0.5) * (high - low) + low)
    hinge = jnp.maximum(_margins(logits, y, targeted) + confidence + _OFFSET, 0.0)
    dist = jnp.sum(jnp.square(new - x0).reshape(xr.shape[0], -1), -1)
    return jnp.sum(const * hinge + dist), (hinge, new)

  def cond(carry):
    it, s = carry
    return (it < iterations_per_call) & jnp.any(s["active"])

  def body(carry):
    it, s = carry
    active = s["active"]
    g, (hinge, new) = jax.grad(losses, has_aux=True)(s["w"], s["start"], s["valid"], s["const"])
    works = active & (hinge < _SUCCESS) & (abort_early | (s["step"] == max_iterations - 1))

    def succeed(s):
      s = dict(s)
      empty = ~jnp.any(s["valid"].reshape(xr.shape[0], -1), -1)
      mask = expand(works)
      valid = fix_pixels(new - xr, g, s["valid"], grouped)
      s["valid"] = jnp.where(mask, valid, s["valid"])
      s["best"] = jnp.where(mask, jnp.where(expand(empty), xr, new), s["best"])
      s["found"] = s["found"] | works
      s["rounds"] = s["rounds"] + works
      s["active"] = active & ~(works & empty)  # nothing left to fix: the released code stops
      s["start"] = jnp.where(mask, jnp.arctanh(new * _TANH_SCALE), s["start"])
      for k in ("w", "m", "v"):
        s[k] = jnp.where(mask, 0.0, s[k])
      s["t"] = jnp.where(works, 0, s["t"])
      s["step"] = jnp.where(works, 0, s["step"])
      if reduce_const:
        s["const"] = jnp.where(works, s["const"] / 2, s["const"])
      return s

    s = jax.lax.cond(jnp.any(works), succeed, lambda s: dict(s), s)
    # every other active example takes one Adam step and may move on to a larger c
    going = active & ~works
    mask = expand(going)
    t = s["t"] + 1
    m = _BETA1 * s["m"] + (1 - _BETA1) * g
    v = _BETA2 * s["v"] + (1 - _BETA2) * jnp.square(g)
    lr = learning_rate * jnp.sqrt(1 - _BETA2 ** t) / (1 - _BETA1 ** t)
    w = s["w"] - expand(lr) * m / (jnp.sqrt(v) + _EPSILON)
    s["w"] = jnp.where(mask, w, s["w"])
    s["m"] = jnp.where(mask, m, s["m"])
    s["v"] = jnp.where(mask, v, s["v"])
    s["t"] = jnp.where(going, t, s["t"])
    step = jnp.where(going, s["step"] + 1, s["step"])
    roll = going & (step == max_iterations)
    s["const"] = jnp.where(roll, s["const"] * const_factor, s["const"])
    s["step"] = jnp.where(roll, 0, step)
    s["active"] = s["active"] & ~(roll & (s["const"] >= largest_const))  # this round failed
    s["iterations"] = s["iterations"] + active
    return it + 1, s

  _, state = jax.lax.while_loop(cond, body, (jnp.int32(0), state))
  return state


def _initial_state(xr, already, initial_const):
  """Per-example state of a chunk: xr [n, ...] in [-0.5, 0.5]; already bool [n] (succeeds at x)."""
  n = xr.shape[0]
  zeros = jnp.zeros_like(xr)
  return dict(w=zeros, m=zeros, v=zeros, start=jnp.arctanh(xr * _TANH_SCALE),
              valid=jnp.ones(xr.shape, bool), best=xr, t=jnp.zeros(n, jnp.int32),
              step=jnp.zeros(n, jnp.int32), const=jnp.full(n, initial_const, jnp.float32),
              found=already, active=~already, rounds=jnp.zeros(n, jnp.int32),
              iterations=jnp.zeros(n, jnp.int32))


@functools.partial(jax.jit, static_argnums=(4, 5))
def _succeeds(logits_fn, x, y, confidence, targeted, offset):
  """bool [n]: margin + confidence + offset < 0 at x (offset _OFFSET - _SUCCESS: the loop's
  success test; 0: strictly classified as required)."""
  return _margins(logits_fn(x), y, targeted) + confidence + offset < 0.0


def carlini_wagner_l0(logits_fn, x, y, *, bounds, targeted=False, confidence=0.0,
                      max_iterations=1000, abort_early=True, learning_rate=1e-2,
                      initial_const=1e-3, largest_const=2e6, reduce_const=False,
                      const_factor=2.0, independent_channels=False,
                      batch_size: int | None = None,
                      iterations_per_call: int | None = None) -> AttackResult:
  """Carlini & Wagner's L0 attack (their released code's algorithm, batched).

  The defaults are the released code's: MAX_ITERATIONS = 1000, ABORT_EARLY = True,
  LEARNING_RATE = 1e-2, INITIAL_CONST = 1e-3, LARGEST_CONST = 2e6, REDUCE_CONST = False,
  CONST_FACTOR = 2.0, independent_channels = False (TARGETED = True there; False here, as in
  the rest of advbound). The attack works in the code's coordinates x_r = (x - low) /
  (high - low) - 0.5, so its fixed thresholds (hinge offset 0.01, success 1e-4, "changed" 1e-4,
  small score 0.01) and the constants mean the same for any `bounds`.

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    x: float32 [N, *image_shape] inside bounds. For [N, H, W, C] batches a pixel is an (H, W)
      position (its channels are fixed together); other shapes treat each value as a pixel.
    y: int32 [N]; true labels (untargeted) or targets (targeted).
    bounds: (low, high).
    targeted: make y the predicted class instead of any other class.
    confidence: kappa, a logit margin required on top of the code's 0.01 offset.
    max_iterations: Adam iterations per value of c.
    abort_early: a round succeeds at its first successful iterate; False: only at the last
      iterate of a value of c (the released code's `step == CONST - 1` is a typo for this).
    learning_rate: Adam's learning rate on w.
    initial_const: the first c of every image.
    largest_const: a round fails once c reaches this.
    reduce_const: halve c after each successful round.
    const_factor: c's factor after max_iterations failed iterations (> 1).
    independent_channels: score and fix each channel on its own (the code's option; counted
      changes are still pixels for its "at most 0.3 sqrt(changed)" rule).
    batch_size: images per compiled call; default all.
    iterations_per_call: iterations per compiled call between progress reports; default
      max_iterations. The result does not depend on it.

  Returns:
    AttackResult: the last successful round's example per image (the input where the first
    round failed); success bool [N] judged by the model at the returned point (margin >
    confidence); distortions (l0 counts changed values, i.e. channels).
  """
  low, high, n = checks.check_attack_inputs(x, y, bounds)
  checks.check_positive(confidence, "confidence", allow_zero=True)
  checks.check_positive(max_iterations, "max_iterations", integer=True)
  checks.check_positive(learning_rate, "learning_rate")
  checks.check_positive(initial_const, "initial_const")
  checks.check_positive(largest_const, "largest_const")
  checks.check_positive(const_factor, "const_factor")
  if largest_const <= initial_const:
    raise ValueError(f"largest_const must exceed initial_const {initial_const}, "
                     f"got {largest_const!r}")
  if const_factor <= 1:
    raise ValueError(f"const_factor must be > 1, got {const_factor!r}")
  for name, value in (("batch_size", batch_size), ("iterations_per_call", iterations_per_call)):
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                              or value <= 0):
      raise ValueError(f"{name} must be None or an int > 0, got {value!r}")
  x = np.asarray(x, np.float32)
  fn = as_pytree_fn(logits_fn)
  num_classes = jax.eval_shape(fn, jax.ShapeDtypeStruct((1,) + x.shape[1:], jnp.float32)).shape[-1]
  checks.check_labels(y, n, num_classes)
  grouped = x.ndim == 4 and not independent_channels
  settings = dict(confidence=jnp.float32(confidence), max_iterations=jnp.int32(max_iterations),
                  learning_rate=jnp.float32(learning_rate),
                  largest_const=jnp.float32(largest_const), const_factor=jnp.float32(const_factor),
                  iterations_per_call=jnp.int32(iterations_per_call or max_iterations))
  advance = functools.partial(_advance, fn, settings=settings, low=low, high=high,
                              targeted=bool(targeted), abort_early=bool(abort_early),
                              reduce_const=bool(reduce_const), grouped=grouped)
  succeeds = functools.partial(_succeeds, fn, confidence=jnp.float32(confidence),
                               targeted=bool(targeted))

  def attack_chunk(xc, yc):
    xr = (xc - low) / (high - low) - 0.5
    already = succeeds(xc, yc, offset=_OFFSET - _SUCCESS)
    state = _initial_state(xr, already, float(initial_const))
    while True:
      state = advance(xr, yc, state)
      active = int(np.sum(sharding.to_host(state["active"])))
      logging.log_every_n_seconds(
          logging.INFO, "CW-L0: %d iterations, %d/%d images running, %d found", 10,
          int(np.max(sharding.to_host(state["iterations"]))), active, xc.shape[0],
          int(np.sum(sharding.to_host(state["found"]))))
      if not active:
        break
    best = (state["best"] + 0.5) * (high - low) + low
    best = jnp.clip(best, low, high)
    snapped = jnp.where(jnp.abs(best - xc) <= _SNAP * (high - low), xc, best)
    ok_snapped = succeeds(snapped, yc, offset=0.0)
    adv = jnp.where(ok_snapped.reshape((-1,) + (1,) * (xc.ndim - 1)), snapped, best)
    return adv, state["found"] & succeeds(adv, yc, offset=0.0)

  adv, success = batching.map_chunks(attack_chunk, x, np.asarray(y, np.int32),
                                     chunk_size=batch_size or n, desc="CW-L0")
  return make_result(jnp.asarray(x), jnp.asarray(adv), jnp.asarray(success))
