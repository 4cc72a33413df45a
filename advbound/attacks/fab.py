"""FAB, the fast adaptive boundary attack (Croce & Hein, ICML 2020), as AutoAttack runs it.

FAB looks for the adversarial example of smallest L-inf or L2 norm. At the iterate x_i (x_0 = x,
or a random start) it linearises the boundary between the true class y and one other class,

  untargeted: s = argmin_{k != y} |f_k - f_y| / |grad f_k - grad f_y|_q   (q the dual norm:
              1 for L-inf, 2 for L2), the closest linearised boundary;
  targeted:   s = the target (AutoAttack's FAB-T: the class ranked `k` in x's clean logits,
              k = 2 .. target_classes + 1, one after the other on the points still robust),

giving the hyperplane pi = {z : <w, z> = b}, w = grad(f_s - f_y)(x_i),
b = <w, x_i> - (f_s - f_y)(x_i). It projects both x_i and the original x onto pi intersected
with the box (d1, d2: `project_linf` / `project_l2`, the minimal-norm solutions), and steps

  alpha = min(|d1| / (|d1| + |d2|), alpha_max),
  x_{i+1} = clip((1 - alpha) (x_i + eta d1) + alpha (x + eta d2), low, high),

a step biased towards x and extrapolated by eta. Where x_{i+1} is misclassified (argmax != y,
also in the targeted mode) it is kept if its norm |x_{i+1} - x| is the smallest found, and the
iterate moves back towards x: x_{i+1} <- x + beta (x_{i+1} - x). A run is `num_steps` such steps;
`restarts` runs per target, the first from x, the others from the reference's random start
x + (epsilon / 2) u / |u| (u uniform in [-1, 1]^D for L-inf, standard normal for L2), clipped.
A run breaks an example when its smallest adversarial has norm <= epsilon; later runs (further
restarts and targets) only attack the examples still robust, as the reference's `perturb`.

Everything follows the reference, `pyautoattack` (fab_base.py, fab_pt.py, fab_projections.py):
constants (1e-12 in the distance, 1e-8 floor of the projection norms, 1e10 as "none found"),
the class choice (first minimum), the projections' sort-and-bisect algorithms step for step.

Loops: with loop="device" a chunk is one compiled program (lax loops); with loop="host", the
CPU default, one iteration is compiled alone and driven from Python, because XLA:CPU runs a
model's convolutions inside a lax loop with slower kernels (`benchmarks/compiled_loop.py`).
Both run the same iteration and give the same results up to float rounding.

Departures from the reference:
- bounds are general (low, high) (scalars, or arrays broadcastable to the flattened batch in the
  projections): the reference assumes [0, 1]. Every quantity is in the units of bounds; with
  (0, 1) the arithmetic is the reference's operation for operation (our sorts are stable,
  torch's need not be: tied breakpoints may be summed in another order).
- the projections keep the reference's formulation, differences of cumulative sums of size
  ~ (high - low) |w|_1, so their float32 rounding grows with the width of the box relative to
  the distance sought (on an affine model in (-2, 3), a point 5e-5 from its boundary ended at
  1.05 times that distance, where (0, 1) gives FAB's usual 1.005).
- random starts come from jax keys folded with the example's id and the run's index, so an
  example's attack does not depend on the batch, the chunking, the device count or which other
  examples are still robust (the reference draws one tensor for the robust subset); individual
  draws differ from torch's.
- examples misclassified on the clean input are returned as they are, with success True (the
  reference skips them; AutoAttack counts them as broken).
- a hyperplane with w = 0 gives d = 0 (the reference's masked product gives 0 * nan = nan when a
  whole row of w is zero).
- every example runs in one fixed-shape batch: runs continue while any example of the chunk is
  still robust (broken examples are frozen, so nothing depends on this).
- the untargeted class gradients come from one forward pass and a vmapped backward pass over
  the K one-hot cotangents (the reference's K backward calls): a chunk holds n * K * D floats of
  Jacobian, which `batch_size` bounds.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from advbound.attacks.result import AttackResult, make_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, probe, sharding

__all__ = ["fab", "project_linf", "project_l2", "NORMS"]

NORMS = ("linf", "l2")
_NONE = 1e10      # the reference's norm of "no adversarial found yet"
_BIG = 1e12       # the L2 projection's stand-in for an infinite breakpoint


def _segment(num, rows, go):
  """lb int32 [rows] after the reference's ceil(log2(num)) bisection steps on [0, num - 1]."""
  steps = math.ceil(math.log2(num)) if num > 1 else 0

  def body(_, lu):
    lb, ub = lu
    mid = (lb + ub) // 2
    beyond = go(mid)
    return jnp.where(beyond, mid, lb), jnp.where(beyond, ub, mid)

  lb = jnp.zeros(rows, jnp.int32)
  ub = jnp.full(rows, num - 1, jnp.int32)
  return jax.lax.fori_loop(0, steps, body, (lb, ub))[0]


def _numpy_stable_argsort(keys):
  return np.argsort(keys, axis=1, kind="stable").astype(np.int32)


def _sort_rows(key, *values):
  """(key, *values) [M, D] reordered by a stable ascending sort of each row of key.

  On XLA's CPU backend a sort with several operands runs ~8x slower than numpy's (27 ms vs
  ~4 ms for 50 rows of 3,072 here, half of a FAB step), so there the permutation comes from
  numpy (a host callback, exact: the same stable order) and the rows are gathered; elsewhere
  it is one `lax.sort`."""
  if jax.default_backend() != "cpu":
    return jax.lax.sort((key,) + values, dimension=1, num_keys=1, is_stable=True)
  order = jax.pure_callback(_numpy_stable_argsort,
                            jax.ShapeDtypeStruct(key.shape, jnp.int32), key,
                            vmap_method="sequential")
  return tuple(jnp.take_along_axis(a, order, axis=1) for a in (key,) + values)


def project_linf(points, w, b, low=0.0, high=1.0):
  """Minimal L-inf step onto a hyperplane inside a box (the reference's `projection_linf`).

  For every row m: the d of smallest |d|_inf with <w_m, t_m + d> = b_m and
  low <= t_m + d <= high. Where the box does not reach the hyperplane, d moves every coordinate
  with w != 0 to the box's corner on the hyperplane's side (the closest it can get); d = 0 where
  w = 0. Sort-based and exact: the breakpoints |corner - t| sorted, cumulative sums of the
  reachable change, a bisection for the active segment.

  Args:
    points: float32 [M, D], inside the box.
    w: float32 [M, D] normals; b: float32 [M] offsets.
    low, high: the box, scalars or arrays broadcastable to [M, D] (the reference: 0 and 1).

  Returns:
    float32 [M, D]: d.
  """
  t = points
  num = t.shape[1]
  side = jnp.where(jnp.sum(w * t, axis=1) - b >= 0, 1.0, -1.0).astype(t.dtype)
  w = w * side[:, None]
  b = b * side
  up = w < 0                                   # these coordinates move up, to `high`
  nonzero = w != 0
  d = jnp.where(nonzero, jnp.where(up, high - t, low - t), 0.0)  # all the way to the corner
  p = jnp.where(up, high - t, t - low)         # how far each coordinate can move
  c = b - jnp.sum(w * t, axis=1)               # the change of <w, .> needed (<= 0)
  b0 = jnp.sum(w * d, axis=1)                  # the change at the corner
  # by decreasing p (the reverse of a stable ascending sort, as the reference's argsort+flip)
  ps, ws, ds = (a[:, ::-1] for a in _sort_rows(p, w, d))
  s = jnp.cumsum(jnp.abs(ws), axis=1)
  sb = jnp.cumsum(-ws * ds, axis=1) + b0[:, None]
  inside_first = c - (sb[:, -1] - s[:, -1] * ps[:, -1]) > 0  # before the smallest breakpoint
  search = (c - b0 > 0) & ~inside_first                     # reachable, past a breakpoint
  rows = jnp.arange(t.shape[0])

  def beyond(mid):
    return c - (sb[rows, mid] - s[rows, mid] * ps[rows, mid]) > 0

  lb = _segment(num, t.shape[0], beyond)
  lam_first = jnp.maximum((c - sb[:, -1]) / -s[:, -1], 0.0)[:, None]
  d_first = jnp.where(up, 1.0, -1.0) * lam_first
  lam = jnp.maximum((c - sb[rows, lb]) / -s[rows, lb], 0.0)[:, None]
  d_search = jnp.where(up, jnp.minimum(lam, d), jnp.maximum(-lam, d))
  d = jnp.where(inside_first[:, None], d_first, jnp.where(search[:, None], d_search, d))
  return jnp.where(nonzero, d, 0.0)


def project_l2(points, w, b, low=0.0, high=1.0):
  """Minimal L2 step onto a hyperplane inside a box (the reference's `projection_l2`).

  For every row m: the d of smallest |d|_2 with <w_m, t_m + d> = b_m and
  low <= t_m + d <= high, i.e. d = clip(-lambda w, low - t, high - t) for the lambda that reaches
  the hyperplane. Where the box does not reach it, d moves every coordinate with |w| > 1e-8 to
  the bound on the hyperplane's side; d = 0 where |w| <= 1e-8. Sort-based and exact: the
  breakpoints lambda_i at which coordinates reach the box, sorted, cumulative sums of the
  change, a bisection for the active segment.

  Args:
    points: float32 [M, D], inside the box.
    w: float32 [M, D] normals; b: float32 [M] offsets.
    low, high: the box, scalars or arrays broadcastable to [M, D] (the reference: 0 and 1).

  Returns:
    float32 [M, D]: d.
  """
  t = points
  num = t.shape[1]
  c = jnp.sum(w * t, axis=1) - b
  side = jnp.where(c >= 0, 1.0, -1.0).astype(t.dtype)
  w = w * side[:, None]
  c = c * side                                  # >= 0: <w, t + d> must fall by c
  live = jnp.abs(w) >= 1e-8
  r = jnp.clip(jnp.maximum((t - low) / w, (t - high) / w), -_BIG, _BIG)  # breakpoints
  r = jnp.where(live, r, _BIG)
  r = jnp.where(r == -_BIG, _BIG, r)
  rs, w2s = _sort_rows(r, w * w)
  rs2 = jnp.concatenate([rs[:, 1:], jnp.zeros_like(rs[:, :1])], axis=1)
  rs = jnp.where(rs == _BIG, 0.0, rs)
  rs2 = jnp.where(rs2 == _BIG, 0.0, rs2)
  total = jnp.sum(w2s, axis=1, keepdims=True)
  ws = total - jnp.cumsum(w2s, axis=1)          # |w|^2 of the coordinates still free
  d = jnp.where(jnp.abs(w) > 1e-8, -(r * w), 0.0)  # every coordinate at its bound
  start = -total * rs[:, :1]
  s = jnp.concatenate([start, jnp.cumsum((rs - rs2) * ws, axis=1) + start], axis=1)  # [M, D+1]
  before = s[:, 0] + c < 0                      # no coordinate reaches the box
  unreachable = jnp.sum(d * w, axis=1) + c > 0
  search = ~(before | unreachable)
  rows = jnp.arange(t.shape[0])
  lb = _segment(num, t.shape[0], lambda mid: s[rows, mid] + c > 0)
  d_before = -(c / total[:, 0])[:, None] * w
  ws_lb = ws[rows, lb]
  alpha = jnp.where(ws_lb == 0, 0.0, (s[rows, lb] + c) / ws_lb + rs[rows, lb])[:, None]
  d_search = jnp.where(alpha > r, d, -alpha * w)
  d = jnp.where(before[:, None], d_before, jnp.where(search[:, None], d_search, d))
  return jnp.where(jnp.abs(w) > 1e-8, d, 0.0)


def _norm(v, norm):
  """Per-row L-inf or L2 norm of [n, D], float32 [n]."""
  if norm == "linf":
    return jnp.max(jnp.abs(v), axis=1)
  return jnp.sqrt(jnp.sum(v * v, axis=1))


def _random_start(key, x0, epsilon, low, high, norm):
  """The reference's random start for x0 [n, D], per-example keys [n]: x0 + eps/2 u/|u|."""
  if norm == "linf":
    u = jax.vmap(lambda k: jax.random.uniform(k, x0.shape[1:], x0.dtype, -1.0, 1.0))(key)
  else:
    u = jax.vmap(lambda k: jax.random.normal(k, x0.shape[1:], x0.dtype))(key)
  return jnp.clip(x0 + epsilon * u / _norm(u, norm)[:, None] * 0.5, low, high)


_STATIC = ("low", "high", "norm", "targeted", "target_classes", "num_steps", "restarts")


def _program(logits_fn, key, x, y, ids, epsilon, alpha_max, eta, beta, *, low, high, norm,
             targeted, target_classes, num_steps, restarts):
  """FAB on one chunk (x [n, *S], y int32 [n], ids int32 [n]) as pieces: prepare() -> (x0
  [n, D], ranked [n, K], broken [n]); start(i, x0, ranked) -> (target [n], the run's first
  carry); step(carry, target) one FAB step; merge(i, carry, x0, adv, broken) -> (adv, broken).
  Runs are (target, restart) pairs, i = 0 .. runs - 1, in the reference's order."""
  del num_steps, target_classes  # (the drivers' loop lengths)
  n, shape = x.shape[0], x.shape[1:]
  rows = jnp.arange(n)
  predict = lambda z: jnp.argmax(logits_fn(z.reshape((n,) + shape)), axis=-1)
  project = project_linf if norm == "linf" else project_l2
  example_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(ids)

  def prepare():
    logits0 = logits_fn(x)
    broken = jnp.argmax(logits0, axis=-1) != y  # misclassified already: nothing to do
    return x.reshape(n, -1), jnp.argsort(logits0, axis=-1), broken  # ranked ascending

  def diffs(z, target):
    """(df [n, C], dg [n, C, D]): f_k - f_y and its gradient at z [n, D]; C = K, or 1 with a
    target; df of the true class 1e10 (never the closest)."""
    if targeted:
      def margin(v):
        f = logits_fn(v.reshape((n,) + shape))
        return jnp.sum(f[rows, target] - f[rows, y]), f[rows, target] - f[rows, y]
      g, df = jax.grad(margin, has_aux=True)(z)
      return df[:, None], g[:, None]
    f, vjp = jax.vjp(lambda v: logits_fn(v.reshape((n,) + shape)), z)
    num_classes = f.shape[-1]
    cot = jnp.broadcast_to(jnp.eye(num_classes, dtype=f.dtype)[:, None], (num_classes,) + f.shape)
    g = jnp.moveaxis(jax.vmap(lambda ct: vjp(ct)[0])(cot), 0, 1)  # [n, K, D]
    df = f - f[rows, y][:, None]
    dg = g - g[rows, y][:, None]
    return df.at[rows, y].set(_NONE), dg

  def start(i, x0, ranked):
    restart = i % restarts
    target = ranked[:, ranked.shape[-1] - 2 - i // restarts]
    x1 = x0
    if restarts > 1:  # (static: no random numbers compiled for single runs, as FAB-T's)
      keys = jax.vmap(lambda k: jax.random.fold_in(k, i))(example_keys)
      x1 = jnp.where(restart > 0, _random_start(keys, x0, epsilon, low, high, norm), x0)
    return target, (x1, x0, jnp.full((n,), _NONE, x0.dtype), x0)

  def step(carry, target):
    x1, best, res, x0 = carry
    df, dg = diffs(x1, target)
    dual = jnp.sum(jnp.abs(dg), -1) if norm == "linf" else jnp.sqrt(jnp.sum(dg * dg, -1))
    closest = jnp.argmin(jnp.abs(df) / (1e-12 + dual), axis=1)
    w = dg[rows, closest]
    b = -df[rows, closest] + jnp.sum(w * x1, axis=1)
    # one projection call for both points, as the reference; rows (x_i, x) of an example
    # adjacent, so that a batch split over devices stays split the same way
    both = project(jnp.stack([x1, x0], 1).reshape(2 * n, -1), jnp.repeat(w, 2, axis=0),
                   jnp.repeat(b, 2), low, high).reshape(n, 2, -1)
    d1, d2 = both[:, 0], both[:, 1]
    a1 = jnp.maximum(_norm(d1, norm), 1e-8)[:, None]
    a2 = jnp.maximum(_norm(d2, norm), 1e-8)[:, None]
    alpha = jnp.minimum(jnp.maximum(a1 / (a1 + a2), 0.0), alpha_max)
    x1 = jnp.clip((x1 + eta * d1) * (1 - alpha) + (x0 + d2 * eta) * alpha, low, high)
    adv = predict(x1) != y
    dist = _norm(x1 - x0, norm)
    better = adv & (dist < res)
    best = jnp.where(better[:, None], x1, best)
    res = jnp.where(better, dist, res)
    x1 = jnp.where(adv[:, None], x0 + (x1 - x0) * beta, x1)
    return x1, best, res, x0

  def merge(carry, adv, broken):
    _, best, res, x0 = carry
    found = jnp.where((res < _NONE)[:, None], best, x0)
    new = ~broken & (predict(found) != y) & (_norm(found - x0, norm) <= epsilon)
    return jnp.where(new[:, None], found, adv), broken | new

  return prepare, start, step, merge


def _runs(static) -> int:
  return (static["target_classes"] if static["targeted"] else 1) * static["restarts"]


@functools.partial(jax.jit, static_argnames=_STATIC)
def _fab(logits_fn, key, x, y, ids, epsilon, alpha_max, eta, beta, **static):
  """FAB on one chunk as one compiled program (loop="device"): x [n, *S], y int32 [n], ids
  int32 [n] -> (adversarial [n, *S], broken bool [n])."""
  prepare, start, step, merge = _program(logits_fn, key, x, y, ids, epsilon, alpha_max, eta,
                                         beta, **static)
  x0, ranked, broken = prepare()

  def run(state):
    i, adv, broken = state
    target, carry = start(i, x0, ranked)
    carry = jax.lax.fori_loop(0, static["num_steps"], lambda _, c: step(c, target), carry)
    return (i + 1,) + merge(carry, adv, broken)

  state = (jnp.int32(0), x0, broken)
  _, adv, broken = jax.lax.while_loop(lambda s: (s[0] < _runs(static)) & ~jnp.all(s[2]), run,
                                      state)
  return adv.reshape(x.shape), broken


PREPARE, START, STEP, MERGE = range(4)  # the pieces `_program` returns, in order


@functools.partial(jax.jit, static_argnames=("piece",) + _STATIC)
def _host_piece(piece, logits_fn, key, x, y, ids, epsilon, alpha_max, eta, beta, *piece_args,
                **static):
  """One piece of `_program` compiled alone (loop="host"), applied to piece_args."""
  return _program(logits_fn, key, x, y, ids, epsilon, alpha_max, eta, beta,
                  **static)[piece](*piece_args)


def _fab_host(logits_fn, key, x, y, ids, epsilon, alpha_max, eta, beta, **static):
  """`_fab` with its loops in Python (loop="host"): one step compiled alone, so that XLA:CPU
  runs the model's backward convolutions with its fast kernels; whether every example is
  broken is read back once per run, as the while_loop's condition."""
  args = (logits_fn, key, x, y, ids, epsilon, alpha_max, eta, beta)
  x0, ranked, broken = _host_piece(PREPARE, *args, **static)
  adv = x0
  for i in probe.steps(_runs(static), "FAB runs", bound=True):
    if probe.stops_early() and np.all(sharding.to_host(broken)):
      break
    target, carry = _host_piece(START, *args, jnp.int32(i), x0, ranked, **static)
    for _ in probe.steps(static["num_steps"], "FAB steps"):
      carry = _host_piece(STEP, *args, carry, target, **static)
    adv, broken = _host_piece(MERGE, *args, carry, adv, broken, **static)
  return adv.reshape(x.shape), broken


def fab(logits_fn, key, x, y, *, epsilon, bounds, norm="linf", targeted=False,
        target_classes=9, num_steps=100, restarts=1, alpha_max=0.1, eta=1.05, beta=0.9,
        batch_size: int | None = None, ids=None, loop: str | None = None) -> AttackResult:
  """FAB (untargeted) or FAB-T (targeted) with AutoAttack's settings; see the module docstring.

  Args:
    logits_fn: pure function [B, *S] -> logits [B, K].
    key: jax.random key for the random restarts (used when restarts > 1).
    x: float32 [N, *S] inside bounds.
    y: int32 [N] true labels (also in the targeted mode: the targets are the classes ranked
      2 .. target_classes + 1 in x's clean logits).
    epsilon: the budget (>= 0, units of bounds): an adversarial counts when its norm is
      <= epsilon; also the scale of the random start (epsilon / 2).
    bounds: (low, high).
    norm: "linf" or "l2".
    targeted: FAB-T (AutoAttack's "fab-t") instead of FAB.
    target_classes: targets tried in turn when targeted (1 <= target_classes <= K - 1;
      AutoAttack: 9).
    num_steps: steps per run (the reference's n_iter, 100).
    restarts: runs per target (the reference's n_restarts; AutoAttack: 1 for FAB-T, 5 for FAB
      in "plus"); the first from x, the others from a random start.
    alpha_max, eta, beta: the step's bias bound, extrapolation and backward step (0.1, 1.05,
      0.9).
    batch_size: examples per compiled call (default all; with loop="host" at most
      `batching.HOST_CHUNK`, which runs faster on CPU); an untargeted chunk holds
      batch_size * K * D floats of class gradients.
    ids: int [N] the examples' ids for their random streams (default 0 .. N - 1; AutoAttack
      passes the indices into its full batch).
    loop: "device" (each chunk one compiled program), "host" (one step compiled alone and
      driven from Python: several times faster on XLA's CPU backend) or None ("host" on CPU,
      else "device"). The same results up to float rounding.

  Returns:
    AttackResult: where success, the smallest adversarial found by the first run that broke
    the example (misclassified, within epsilon in `norm`, inside bounds), or x where x is
    already misclassified (success True); x elsewhere.
  """
  if norm not in NORMS:
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
  low, high, n = checks.check_attack_inputs(x, y, bounds, batch_size=batch_size)
  checks.check_positive(epsilon, "epsilon", allow_zero=True)
  checks.check_positive(num_steps, "num_steps", allow_zero=True, integer=True)
  checks.check_positive(restarts, "restarts", integer=True)
  checks.check_positive(alpha_max, "alpha_max", allow_zero=True)
  checks.check_positive(eta, "eta")
  checks.check_positive(beta, "beta")
  fn = as_pytree_fn(logits_fn)
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.int32)
  num_classes = int(jax.eval_shape(fn, jax.ShapeDtypeStruct((1,) + x.shape[1:],
                                                            jnp.float32)).shape[-1])
  checks.check_labels(y, n, num_classes)
  if targeted:
    checks.check_count(target_classes, "target_classes", num_classes - 1)
  ids = np.arange(n, dtype=np.int32) if ids is None else np.asarray(ids)
  checks.check_labels(ids, n, name="ids")
  ids = ids.astype(np.int32)

  loop = checks.loop_mode(loop)
  run = _fab if loop == "device" else _fab_host

  def chunk(xc, yc, ic):
    return run(fn, key, xc, yc, ic, jnp.float32(epsilon), jnp.float32(alpha_max),
               jnp.float32(eta), jnp.float32(beta), low=low, high=high, norm=norm,
               targeted=bool(targeted), target_classes=int(target_classes) if targeted else 1,
               num_steps=int(num_steps), restarts=int(restarts))

  adv, broken = batching.map_chunks(chunk, x, y, ids,
                                    desc="FAB-T" if targeted else "FAB",
                                    **batching.attack_chunking(batch_size or n, loop))
  return make_result(jnp.asarray(x), jnp.asarray(adv), jnp.asarray(broken))
