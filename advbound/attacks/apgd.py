"""Auto-PGD (Croce & Hein, ICML 2020): APGD-CE, APGD-DLR and APGD-T, AutoAttack's
gradient-based attacks, in the L-inf or L2 ball.

One run of APGD (`num_steps` iterations from a random start):

  start   L-inf: x + eps * t / max|t|, t ~ U[-1, 1]^D; L2: x + eps * t / |t|_2, t ~ N(0, I);
          clipped to bounds.
  step    z = P(x_k + eta_k * s(g_k)), s = sign (L-inf) or g / |g|_2 (L2), then
          x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1})), a = 1 on the first step and
          0.75 after it; P projects onto the eps-ball around x, then clips to bounds;
          eta_0 = 2 eps.
  check   at the checkpoints, the first n_iter_2 = max(int(0.22 n), 1) iterations after the
          start, then windows shrinking by size_decr = max(int(0.03 n), 1) down to
          n_iter_min = max(int(0.06 n), 1), an example's step size halves if
            (1) the loss rose in at most rho * w of the w iterations of the window, or
            (2) its step size was not halved at the previous checkpoint and its best loss has
                not risen since then;
          an example whose step halves restarts from its best-loss point and that point's
          gradient.
  result  the last iterate that was misclassified (any iteration), and the best loss.

`apgd` maximises the cross-entropy ("ce") or the DLR loss ("dlr") of the true label; `apgd_targeted`
(APGD-T) the targeted DLR loss towards the 2nd, 3rd, ... (target_classes + 1)-th most likely class
of the clean input, one target after another. Restarts (and targets) run on the examples not yet
broken: an example keeps the adversarial input of its first successful run.

The schedule, the constants and both halving conditions are the reference's (`pyautoattack`,
`APGDAttack.attack_single_run`), including two of its details: condition (1) counts
"loss rose" as `loss_k > loss_{k-1}` with `<=` against rho * w, and the first window's first
comparison is against 0 (the reference compares the first iteration's loss with the unwritten
last row of its loss buffer, not with the start's loss).

Loops: with loop="device" a chunk is one compiled program (lax loops); with loop="host", the
CPU default, one iteration is compiled alone and driven from Python, because XLA:CPU runs a
model's convolutions inside a lax loop with slower kernels (`benchmarks/compiled_loop.py`).
Both run the same iteration and give the same results up to float rounding.

Departures from the reference:
- bounds are general (low, high); the reference clips to [0, 1]. Every quantity is in the units
  of bounds: epsilon, the step size (2 eps), the L2 projection;
- random numbers come from `key`, folded with each example's index (`ids`), the run and the
  iteration: an example's start (and a stochastic model's draws) do not depend on the other
  examples, the batch size or the device count; the draws themselves differ from torch's;
- every run is computed for every example of a chunk and the first success kept, which per
  example equals the reference's restarts on the points still robust; runs stop early once
  every example of a chunk is broken;
- success is judged afresh at the end of each run (a forward pass, or one fresh draw of a
  stochastic model) on the run's adversarial input, as AutoAttack's outer loop judges it;
- with a deterministic model `eot_iter` is ignored (the reference averages `eot_iter` equal
  gradients);
- a stochastic model `logits_fn(x, key)` is called one example at a time (vmapped), each with
  its own key, so that its noise does not depend on the batch.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from advbound.attacks.result import AttackResult, make_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, probe, sharding

__all__ = ["apgd", "apgd_targeted", "dlr_loss", "targeted_dlr_loss", "checkpoints"]

LOSSES = ("ce", "dlr")
_ALPHA = 0.75  # the weight a of the new step after the first one (1 - a: the momentum)


def dlr_loss(logits, y):
  """Untargeted Difference of Logits Ratio loss, per example.

    -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12),

  z_pi1 >= z_pi2 >= ... the sorted logits. Positive where the example is misclassified.

  Args:
    logits: float [N, K], K >= 3.
    y: int [N] labels.

  Returns:
    float [N].
  """
  logits = jnp.asarray(logits)
  if logits.shape[-1] < 3:
    raise ValueError(f"the DLR loss needs at least 3 classes, got logits of shape {logits.shape}")
  z_sorted = jnp.sort(logits, axis=-1)
  onehot = jax.nn.one_hot(y, logits.shape[-1], dtype=bool)
  z_y = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
  z_other = jnp.max(jnp.where(onehot, -jnp.inf, logits), axis=-1)
  return -(z_y - z_other) / (z_sorted[:, -1] - z_sorted[:, -3] + 1e-12)


def targeted_dlr_loss(logits, y, target):
  """Targeted DLR loss (APGD-T), per example.

    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12).

  Args:
    logits: float [N, K], K >= 4.
    y: int [N] true labels.
    target: int [N] target classes.

  Returns:
    float [N].
  """
  logits = jnp.asarray(logits)
  if logits.shape[-1] < 4:
    raise ValueError("the targeted DLR loss needs at least 4 classes, got logits of shape "
                     f"{logits.shape}")
  z_sorted = jnp.sort(logits, axis=-1)
  z_y = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
  z_t = jnp.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
  return -(z_y - z_t) / (z_sorted[:, -1] - 0.5 * (z_sorted[:, -3] + z_sorted[:, -4]) + 1e-12)


def checkpoints(num_steps: int) -> tuple[int, int, int]:
  """(n_iter_2, n_iter_min, size_decr) of `num_steps` iterations: the first window, the
  smallest window and the amount each window shrinks by."""
  return (max(int(0.22 * num_steps), 1), max(int(0.06 * num_steps), 1),
          max(int(0.03 * num_steps), 1))


class _Config(NamedTuple):
  """The static settings of one compiled chunk."""
  norm: str
  loss: str               # "ce", "dlr" or "dlr-targeted"
  num_steps: int
  num_runs: int           # restarts (untargeted) or target_classes * restarts (APGD-T)
  restarts: int
  rho: float
  eot_iter: int
  stochastic: bool
  low: float
  high: float


def _expand(v, ndim):
  """[n] -> [n, 1, ..., 1] with `ndim` axes in all."""
  return v.reshape((-1,) + (1,) * (ndim - 1))


def _norm(v):
  """Per-example L2 norm of [n, ...] as [n, 1, ..., 1]."""
  return jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(1, v.ndim)), keepdims=True))


def _logits(fn, z, keys, stochastic):
  """logits [n, K] of z [n, *S]; a stochastic fn sees each example alone with its key."""
  if not stochastic:
    return fn(z)
  return jax.vmap(lambda zi, ki: fn(zi[None], ki)[0])(z, keys)


def _loss(kind, logits, y, target):
  """The per-example loss [n] APGD ascends."""
  if kind == "ce":
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)
  if kind == "dlr":
    return dlr_loss(logits, y)
  return targeted_dlr_loss(logits, y, target)


def _run_program(fn, x, y, target, x0, iter_keys, eps, cfg: _Config):
  """One APGD run from x0 [n, *S] on a chunk as (initial carry, body): body(carry, s) for
  s = 0 .. T returns (carry, the step size [n] iteration s - 1 used); s = 0 evaluates the start,
  s = i + 1 makes iteration i (one trace of the model's gradient instead of two: compiling is
  most of a small attack's cost). `_run_result` reads the final carry."""
  ndim = x.ndim
  n_iter_2, n_iter_min, size_decr = checkpoints(cfg.num_steps)

  def project(z):
    if cfg.norm == "linf":
      z = jnp.clip(z, x - eps, x + eps)
    else:
      d = z - x
      n = _norm(d)
      z = x + d / (n + 1e-12) * jnp.minimum(eps, n)
    return jnp.clip(z, cfg.low, cfg.high)

  def direction(g):
    return jnp.sign(g) if cfg.norm == "linf" else g / (_norm(g) + 1e-12)

  def loss_grad(z, s):
    """(loss [n], logits [n, K], gradient [n, *S]) at z, iteration s - 1 (s = 0: the start)."""
    def one(j):  # draw j of iteration s (a stochastic model's key: one fold per draw)
      keys = None
      if cfg.stochastic:
        keys = jax.vmap(lambda k: jax.random.fold_in(k, s * cfg.eot_iter + j))(iter_keys)

      def total(v):
        logits = _logits(fn, v, keys, cfg.stochastic)
        loss = _loss(cfg.loss, logits, y, target)
        return loss.sum(), (loss, logits)
      (_, (loss, logits)), g = jax.value_and_grad(total, has_aux=True)(z)
      return loss, logits, g

    if not cfg.stochastic or cfg.eot_iter == 1:
      return one(0)

    def draw(g_sum, j):  # the gradient summed over draws; loss and logits of the last draw
      loss, logits, g = one(j)
      return g_sum + g, (loss, logits)
    g_sum, (losses, logits) = jax.lax.scan(draw, jnp.zeros_like(z), jnp.arange(cfg.eot_iter))
    return losses[-1], logits[-1], g_sum / cfg.eot_iter

  n = x.shape[0]
  init = dict(
      x_adv=x0, x_old=x0, grad=jnp.zeros_like(x0),
      x_best=x0, grad_best=jnp.zeros_like(x0), loss_best=jnp.full((n,), -jnp.inf, x.dtype),
      x_found=x0, correct=jnp.ones((n,), bool),
      step=jnp.full((n,), 2.0 * eps, x.dtype),
      loss_steps=jnp.zeros((cfg.num_steps, n), x.dtype),
      counter=jnp.int32(0), window=jnp.int32(n_iter_2),
      loss_best_last=jnp.zeros((n,), x.dtype), reduced_last=jnp.ones((n,), bool))

  def body(c, s):
    is_start, i = s == 0, s - 1
    a = jnp.where(s > 1, _ALPHA, 1.0).astype(x.dtype)  # no momentum on the first step
    step = _expand(c["step"], ndim)
    z = project(c["x_adv"] + step * direction(c["grad"]))
    z = project(c["x_adv"] + (z - c["x_adv"]) * a + (c["x_adv"] - c["x_old"]) * (1 - a))
    z = jnp.where(is_start, x0, z)
    loss, logits, grad = loss_grad(z, s)
    wrong = jnp.argmax(logits, -1) != y
    x_found = jnp.where(_expand(wrong, ndim), z, c["x_found"])
    loss_steps = jnp.where(is_start, c["loss_steps"],
                           c["loss_steps"].at[jnp.maximum(i, 0)].set(loss))
    better = loss > c["loss_best"]  # always at the start (loss_best = -inf)
    better_x = _expand(better, ndim)
    x_best = jnp.where(better_x, z, c["x_best"])
    grad_best = jnp.where(better_x, grad, c["grad_best"])
    loss_best = jnp.where(better, loss, c["loss_best"])
    counter = c["counter"] + jnp.where(is_start, 0, 1)
    window = c["window"]
    # the checkpoint (evaluated every iteration, applied where counter == window): the loss
    # rose in at most rho * window of the window's iterations, or the step was not halved at
    # the last checkpoint and the best loss has not risen since
    rows = jnp.arange(cfg.num_steps)
    rose = loss_steps > jnp.roll(loss_steps, 1, axis=0)  # row j: loss_j > loss_{j-1 mod T}
    in_window = (rows > i - window) & (rows <= i)
    count = jnp.sum(rose & in_window[:, None], axis=0).astype(jnp.float32)
    oscillates = count <= window.astype(jnp.float32) * jnp.float32(cfg.rho)
    stalled = ~c["reduced_last"] & (c["loss_best_last"] >= loss_best)
    at_check = ~is_start & (counter == window)
    halve = at_check & (oscillates | stalled)
    halve_x = _expand(halve, ndim)
    new = dict(
        x_adv=jnp.where(halve_x, x_best, z), x_old=c["x_adv"],
        grad=jnp.where(halve_x, grad_best, grad),
        x_best=x_best, grad_best=grad_best, loss_best=loss_best,
        x_found=x_found, correct=c["correct"] & ~wrong,
        step=jnp.where(halve, c["step"] / 2.0, c["step"]),
        loss_steps=loss_steps,
        counter=jnp.where(at_check, 0, counter),
        window=jnp.where(at_check, jnp.maximum(window - size_decr, n_iter_min), window),
        loss_best_last=jnp.where(at_check | is_start, loss_best, c["loss_best_last"]),
        reduced_last=jnp.where(at_check, oscillates | stalled, c["reduced_last"]))
    return new, c["step"]

  return init, body


def _run_result(final):
  """(x_adv_found [n, *S] the last misclassified iterate (x0 where none), broken bool [n] (some
  iterate, or the start, was misclassified), loss [T, n]) of a run's final carry."""
  return final["x_found"], ~final["correct"], final["loss_steps"]


def _start(key, xi, eps, norm):
  """The reference's random start for one example xi [*S] (before clipping to bounds)."""
  if norm == "linf":
    t = jax.random.uniform(key, xi.shape, xi.dtype, -1.0, 1.0)
    return xi + eps * t / (jnp.max(jnp.abs(t)) + 1e-12)
  t = jax.random.normal(key, xi.shape, xi.dtype)
  return xi + eps * t / (jnp.sqrt(jnp.sum(t * t)) + 1e-12)


def _prepare(fn, key, x, y, ids, cfg: _Config):
  """A chunk's keys and clean prediction: (grid [n, 1 + 3R] keys: column 0 the clean
  prediction's, then (start, iterations, judge) per run; broken bool [n] misclassified clean;
  order int [n, K] the clean logits' classes, ascending as the reference's sort)."""
  # every key of the chunk in two batched folds (each threefry call costs compile time)
  ex_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(ids)
  grid = jax.vmap(lambda k: jax.vmap(lambda j: jax.random.fold_in(k, j))(
      jnp.arange(1 + 3 * cfg.num_runs)))(ex_keys)
  clean_logits = _logits(fn, x, grid[:, 0], cfg.stochastic)
  return grid, jnp.argmax(clean_logits, -1) != y, jnp.argsort(clean_logits, axis=-1)


def _run_inputs(x, grid, order, r, eps, cfg: _Config):
  """Run r's (start x0 [n, *S] clipped to bounds, target [n], iteration keys [n], judge
  keys [n])."""
  start_keys, iter_keys, judge_keys = (grid[:, 1 + 3 * r + j] for j in range(3))
  x0 = jnp.clip(jax.vmap(lambda k, xi: _start(k, xi, eps, cfg.norm))(start_keys, x),
                cfg.low, cfg.high)
  target = order[:, order.shape[-1] - 2 - r // cfg.restarts]  # unused untargeted
  return x0, target, iter_keys, judge_keys


def _empty_trace(x, cfg: _Config):
  return dict(loss=jnp.zeros((x.shape[0], cfg.num_steps), x.dtype),
              step_size=jnp.zeros((x.shape[0], cfg.num_steps), x.dtype),
              start=jnp.zeros_like(x))


def _merge(fn, x, y, eps, cfg: _Config, r, final, steps, x0, judge_keys, adv, broken, trace):
  """Run r's outcome judged afresh and merged: an example not yet broken takes the run's
  adversarial input if it is misclassified, within eps and in bounds. steps [T, n] the step
  sizes of the run. Returns (adv [n, *S], broken [n], trace)."""
  ndim = x.ndim
  tol = 1e-5 * max(1.0, cfg.high - cfg.low)
  found, hit, loss_steps = _run_result(final)
  candidate = jnp.where(_expand(hit, ndim), found, x)
  wrong = jnp.argmax(_logits(fn, candidate, judge_keys, cfg.stochastic), -1) != y
  d = (candidate - x).reshape(x.shape[0], -1)
  size = jnp.max(jnp.abs(d), 1) if cfg.norm == "linf" else jnp.sqrt(jnp.sum(d * d, 1))
  inside = jnp.all((candidate >= cfg.low - tol) & (candidate <= cfg.high + tol),
                   axis=tuple(range(1, ndim)))
  ok = wrong & (size <= eps + tol) & inside
  newly = ok & ~broken
  adv = jnp.where(_expand(newly, ndim), candidate, adv)
  first = r == 0  # the trace: the first run's (cheap beside the run, so always kept)
  trace = dict(loss=jnp.where(first, loss_steps.T, trace["loss"]),
               step_size=jnp.where(first, steps.T, trace["step_size"]),
               start=jnp.where(first, x0, trace["start"]))
  return adv, broken | ok, trace


@functools.partial(jax.jit, static_argnums=(6,))
def _apgd_chunk(fn, key, x, y, ids, eps, cfg: _Config):
  """Every run of APGD (or APGD-T) on a chunk x [n, *S], y [n], ids [n] as one compiled
  program (loop="device"); returns a dict of adversarial [n, *S], success [n] and the first
  run's loss and step size [n, T] and start [n, *S]."""
  grid, broken, order = _prepare(fn, key, x, y, ids, cfg)

  def run(r, carry):
    x0, target, iter_keys, judge_keys = _run_inputs(x, grid, order, r, eps, cfg)
    init, body = _run_program(fn, x, y, target, x0, iter_keys, eps, cfg)
    final, steps = jax.lax.scan(body, init, jnp.arange(cfg.num_steps + 1))
    return _merge(fn, x, y, eps, cfg, r, final, steps[1:], x0, judge_keys, *carry)

  def cond(c):  # the first run always (its trace); later ones while some example is robust
    r, (_, broken, _) = c
    return (r < cfg.num_runs) & ((r == 0) | ~jnp.all(broken))

  _, (adv, broken, trace) = jax.lax.while_loop(
      cond, lambda c: (c[0] + 1, run(c[0], c[1])),
      (jnp.int32(0), (x, broken, _empty_trace(x, cfg))))
  return dict(adversarial=adv, success=broken, **trace)


@functools.partial(jax.jit, static_argnums=(6,))
def _host_prepare(fn, key, x, y, ids, eps, cfg: _Config):
  grid, broken, order = _prepare(fn, key, x, y, ids, cfg)
  return grid, broken, order, _empty_trace(x, cfg)


@functools.partial(jax.jit, static_argnums=(7,))
def _host_start(fn, x, y, grid, order, r, eps, cfg: _Config):
  x0, target, iter_keys, judge_keys = _run_inputs(x, grid, order, r, eps, cfg)
  init, _ = _run_program(fn, x, y, target, x0, iter_keys, eps, cfg)
  return (x0, target, iter_keys, judge_keys), init


@functools.partial(jax.jit, static_argnums=(5,))
def _host_step(fn, x, y, inputs, eps, cfg: _Config, carry, s):
  x0, target, iter_keys, _ = inputs
  return _run_program(fn, x, y, target, x0, iter_keys, eps, cfg)[1](carry, s)


@functools.partial(jax.jit, static_argnums=(5,))
def _host_merge(fn, x, y, inputs, eps, cfg: _Config, r, final, steps, state):
  x0, _, _, judge_keys = inputs
  return _merge(fn, x, y, eps, cfg, r, final, jnp.stack(steps), x0, judge_keys, *state)


def _apgd_chunk_host(fn, key, x, y, ids, eps, cfg: _Config):
  """`_apgd_chunk` with its loops in Python (loop="host"): one iteration compiled alone (and
  the run's start and merge), so that XLA:CPU runs the model's backward convolutions with its
  fast kernels. Whether every example is broken is read back once per run, as the while_loop's
  condition. Same arguments and results, up to float rounding."""
  grid, broken, order, trace = _host_prepare(fn, key, x, y, ids, eps, cfg)
  adv = x
  for r in probe.steps(cfg.num_runs, "APGD runs", bound=True):
    if r > 0 and probe.stops_early() and np.all(sharding.to_host(broken)):
      break
    r = jnp.int32(r)
    inputs, carry = _host_start(fn, x, y, grid, order, r, eps, cfg)
    steps = []
    for s in probe.steps(cfg.num_steps + 1, "APGD steps"):
      carry, step = _host_step(fn, x, y, inputs, eps, cfg, carry, jnp.int32(s))
      steps.append(step)
    # a probe (--estimate) skipped iterations: their records repeat the last one's
    steps += [steps[-1]] * (cfg.num_steps + 1 - len(steps))
    adv, broken, trace = _host_merge(fn, x, y, inputs, eps, cfg, r, carry, steps[1:],
                                     (adv, broken, trace))
  return dict(adversarial=adv, success=broken, **trace)


def _attack(logits_fn, key, x, y, *, epsilon, bounds, norm, loss, num_steps, restarts,
            num_runs_per_restart, rho, eot_iter, stochastic, batch_size, ids, return_trace,
            name, loop, target_classes=None):
  """The checks and the chunking shared by `apgd` and `apgd_targeted`."""
  if norm not in ("linf", "l2"):
    raise ValueError(f"unknown norm {norm!r}; expected 'linf' or 'l2'")
  low, high, n = checks.check_attack_inputs(x, y, bounds, batch_size=batch_size)
  checks.check_positive(epsilon, "epsilon", allow_zero=True)
  checks.check_positive(num_steps, "num_steps", integer=True)
  checks.check_positive(restarts, "restarts", integer=True)
  checks.check_positive(eot_iter, "eot_iter", integer=True)
  checks.check_positive(rho, "rho")
  if rho > 1:
    raise ValueError(f"rho must be in (0, 1], got {rho!r}")
  loop = checks.loop_mode(loop)
  fn = as_pytree_fn(logits_fn)
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.int32)
  ids = np.arange(n, dtype=np.int32) if ids is None else np.asarray(ids)
  checks.check_labels(ids, n, name="ids")
  probe = (jax.eval_shape(lambda v: fn(v, jax.random.key(0)), x[:1]) if stochastic
           else jax.eval_shape(fn, x[:1]))
  num_classes = int(probe.shape[-1])
  checks.check_labels(y, n, num_classes)
  if loss in ("dlr", "dlr-targeted"):
    need = 4 if loss == "dlr-targeted" else 3
    if num_classes < need:
      raise ValueError(f"{name} needs at least {need} classes for the {loss} loss, the model "
                       f"has {num_classes}")
  if target_classes is not None and target_classes > num_classes - 1:
    raise ValueError(f"target_classes must be at most num_classes - 1 = {num_classes - 1}, "
                     f"got {target_classes}")
  cfg = _Config(norm=norm, loss=loss, num_steps=int(num_steps),
                num_runs=int(restarts) * num_runs_per_restart, restarts=int(restarts),
                rho=float(rho), eot_iter=int(eot_iter), stochastic=bool(stochastic), low=low,
                high=high)
  eps = jnp.float32(epsilon)

  run_chunk = _apgd_chunk if loop == "device" else _apgd_chunk_host

  def chunk(xc, yc, ic):
    return run_chunk(fn, key, xc, yc, ic, eps, cfg)

  if not return_trace:  # the trace stays on the device
    chunk = lambda xc, yc, ic, f=chunk: {k: v for k, v in f(xc, yc, ic).items()
                                         if k in ("adversarial", "success")}
  out = batching.map_chunks(chunk, x, y, ids.astype(np.int32),
                            desc=name, **batching.attack_chunking(batch_size or n, loop))
  result = make_result(jnp.asarray(x), jnp.asarray(out["adversarial"]),
                       jnp.asarray(out["success"]))
  if not return_trace:
    return result
  return result, dict(loss=out["loss"].T, step_size=out["step_size"].T, start=out["start"])


def apgd(logits_fn, key, x, y, *, epsilon, bounds, norm="linf", loss="ce", num_steps=100,
         restarts=1, rho=0.75, eot_iter=1, stochastic=False, batch_size=None, ids=None,
         return_trace=False, loop=None):
  """Untargeted APGD on the cross-entropy (APGD-CE) or DLR loss (APGD-DLR).

  Args:
    logits_fn: pure [B, *S] -> logits [B, K]; with `stochastic`, `logits_fn(x, key) -> logits`
      (called on one example at a time, each with its own key).
    key: jax.random key (the random starts; a stochastic model's draws).
    x: float32 [N, *S] inside bounds.
    y: int32 [N] true labels.
    epsilon: radius of the `norm` ball (>= 0), in the units of bounds.
    bounds: (low, high).
    norm: "linf" or "l2".
    loss: "ce" or "dlr" (K >= 3).
    num_steps: iterations per run (the reference's n_iter; AutoAttack: 100).
    restarts: runs from fresh random starts on the examples not yet broken (n_restarts).
    rho: the oscillation threshold of the step-size checkpoints (0.75).
    eot_iter: with `stochastic`, draws whose gradients are averaged per iteration (EOT;
      AutoAttack's "rand" version: 20); ignored for a deterministic model.
    stochastic: logits_fn is randomised and takes a key. The loss and the per-iteration
      misclassification come from the last draw, success from one fresh draw.
    batch_size: examples per compiled call (default all; with loop="host" at most
      `batching.HOST_CHUNK`, which runs faster on CPU).
    ids: int [N] indices of the examples folded into `key` (default 0..N-1), so that a subset
      attacked alone gets the random numbers it gets inside the whole set.
    return_trace: also return the first run's per-iteration record (off by default).
    loop: "device" (each chunk one compiled program: no host round trip; best on GPU/TPU),
      "host" (one iteration compiled alone and driven from Python: several times faster on
      XLA's CPU backend, whose lax loops run backward convolutions with a slow kernel), or
      None: "host" on CPU, else "device". The same results up to float rounding.

  Returns:
    AttackResult: the adversarial input of the first successful run (the last misclassified
    iterate of that run), x where none; success: that input is misclassified (judged afresh),
    within epsilon and in bounds. Examples misclassified before the attack are successes with
    x itself. With return_trace, (AttackResult, trace): trace["loss"] and trace["step_size"]
    float32 [num_steps, N] (the loss after iteration i and the step size iteration i used,
    in the first run), trace["start"] [N, *S] (its random start, clipped to bounds).
  """
  if loss not in LOSSES:
    raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
  return _attack(logits_fn, key, x, y, epsilon=epsilon, bounds=bounds, norm=norm, loss=loss,
                 num_steps=num_steps, restarts=restarts, num_runs_per_restart=1, rho=rho,
                 eot_iter=eot_iter, stochastic=stochastic, batch_size=batch_size, ids=ids,
                 return_trace=return_trace, name=f"APGD-{loss.upper()}", loop=loop)


def apgd_targeted(logits_fn, key, x, y, *, epsilon, bounds, norm="linf", num_steps=100,
                  restarts=1, target_classes=9, rho=0.75, eot_iter=1, stochastic=False,
                  batch_size=None, ids=None, return_trace=False, loop=None):
  """APGD-T: APGD on the targeted DLR loss towards the clean input's 2nd, 3rd, ...,
  (target_classes + 1)-th most likely class in turn, each with `restarts` runs, on the examples
  not yet broken. Success is misclassification (any class), as in AutoAttack.

  Arguments and result as `apgd` (no `loss`; the model needs K >= 4 classes), and
  target_classes: how many targets (1 <= target_classes <= K - 1; AutoAttack: 9). With
  `stochastic`, the targets' order comes from one draw on the clean input. The trace is that of
  the first run (the 2nd most likely class, first restart).
  """
  checks.check_positive(target_classes, "target_classes", integer=True)
  return _attack(logits_fn, key, x, y, epsilon=epsilon, bounds=bounds, norm=norm,
                 loss="dlr-targeted", num_steps=num_steps, restarts=restarts,
                 num_runs_per_restart=int(target_classes), rho=rho, eot_iter=eot_iter,
                 stochastic=stochastic, batch_size=batch_size, ids=ids,
                 return_trace=return_trace, name="APGD-T", loop=loop,
                 target_classes=int(target_classes))
