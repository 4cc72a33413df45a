"""The Square attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020), as AutoAttack runs it.

A score-based random search: it reads the logits only (no gradients, so gradient masking does
not stop it). Per example it keeps the best point found, `x_best`, and its margin

  m(z) = z_y - max_{k != y} z_k       (logits z; the example is broken when m <= 0),

and at iteration i proposes a change of a random square window of side s_i (the same for
every channel, a random sign per channel), accepting the proposal when its margin is lower or
<= 0. Examples whose margin reached <= 0 stop: their point is frozen.

L-inf (the paper's Algorithm 2):
  start   x + eps * v, v = +-1 vertical stripes (a sign per example, column and channel);
  propose x_best with the window set to x +- eps per channel (x_best + 2 eps * sign, projected
          on the eps-box around x).
L2 (Algorithm 3):
  start   a grid of windows of side H // 5 (5 x 5 of them on most sizes), each holding the meta pseudo-Gaussian
          `meta_pseudo_gaussian(h // 5)` (randomly transposed) times a random sign per channel,
          the whole rescaled to L2 norm eps;
  propose moves the mass of two windows W1, W2 into W1: W1 gets the current perturbation of W1
          (normalised per channel) plus a fresh signed meta pseudo-Gaussian, rescaled per channel
          to sqrt(max(eps^2 - |delta|^2, 0) / C + |delta on W1 u W2|^2); W2 \\ W1 is set to 0;
          the whole perturbation is rescaled to L2 norm eps.
Both clip to `bounds` after each proposal. The window side follows p, the fraction of pixels
a window covers: s_i = round(sqrt(p_i * H * W)) (at least 1 for L-inf; at least 3 and odd for
L2; at most min(H, W)), with p_i = p_init / 2^j halved after iterations 10, 50, 200, 500,
1000, 2000, 4000, 6000 and 8000 (`p_schedule`). AutoAttack uses these iteration counts as they
are (`resc_schedule=False`: with its 5,000 queries p stops at p_init / 128); with
`rescale_schedule=True` they are fractions of 10,000 rescaled to `num_queries` (the reference's
default outside AutoAttack).

Settings: AutoAttack's (autoattack.py): num_queries 5,000, p_init 0.8, one restart, the margin
loss. Restarts rerun the attack from a fresh start on the examples not yet misclassified (by
argmax, the reference's test between restarts).

Departures from the reference (`pyautoattack`, square.py):
- bounds are general (low, high) and epsilon is in their units; the reference assumes [0, 1]
  (its clamps). Every step is otherwise unit-free, so Square on (x * a + b, bounds scaled
  alike, eps * a) is the same attack up to rounding;
- random numbers come from `key`, one stream of uniforms per example (folded with its index
  `ids`), restart and iteration, each used as the reference uses its torch.rand numbers (see
  "random draws" below; fed our numbers, the reference takes our steps exactly, which
  tests/square_test.py checks). So windows, signs and the L2 pattern's transposition are drawn
  per example, where the reference draws one window position, one sign per channel and one
  transposition per iteration for every example of the batch; the distribution per example is
  the same (window corners uniform on {0, ..., H - s - 1}: the reference's random_int(0, H - s)
  never reaches H - s; a sign is never 0, the reference's sign(2u - 1) is when u = 0.5);
- the loop runs for the whole chunk until every example is broken or the queries are spent,
  computing proposals for frozen examples too but never applying them; the reference gathers
  the active examples each iteration;
- the L2 start's grid windows that fall partly outside the image (images with H mod 5 >= h // 5,
  e.g. H < 25 not a multiple of 5) are cropped; the reference raises there. L2 needs H >= 5;
- only the untargeted attack with the margin loss (AutoAttack's); no CE loss, no L1.
Success (`AttackResult.success`) is AutoAttack's broken point: the final input misclassified
(argmax != y), within eps in `norm` and inside bounds (up to float32 rounding: 1e-6 of the
bounds' span for L-inf, plus 1e-5 relative for L2). An input misclassified already is a
success with itself as the adversarial example (the reference leaves it untouched).
Loops: with loop="device" a chunk is one compiled program (lax loops); with loop="host", the
CPU default, one iteration is compiled alone and driven from Python, because XLA:CPU runs a
model's convolutions inside a lax loop with slower kernels (`benchmarks/compiled_loop.py`).
Both run the same iteration and give the same results up to float rounding.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from advbound import metrics
from advbound.attacks.result import AttackResult, make_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, probe, sharding

__all__ = ["SCHEDULE_ITERATIONS", "meta_pseudo_gaussian", "p_schedule", "square",
           "window_sizes"]

# iterations after which p halves (out of 10,000 when the schedule is rescaled)
SCHEDULE_ITERATIONS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
NORMS = ("linf", "l2")


def p_schedule(iteration: int, num_queries: int, *, p_init: float = 0.8,
               rescale: bool = False) -> float:
  """p at `iteration` (0-based): p_init / 2^j, j = how many of SCHEDULE_ITERATIONS lie strictly
  below the iteration (rescaled to int(iteration / num_queries * 10000) when `rescale`)."""
  it = int(iteration / num_queries * 10000) if rescale else int(iteration)
  return p_init / 2 ** sum(it > t for t in SCHEDULE_ITERATIONS)


def window_sizes(num_queries: int, image_shape, *, norm: str, p_init: float = 0.8,
                 rescale: bool = False) -> np.ndarray:
  """Window side per iteration, int32 [num_queries], for images (H, W, C).

  s = round(sqrt(p * H * W * C / C)) (Python's round, as the reference), then at least 1
  (L-inf) or at least 3 and odd (L2), at most min(H, W)."""
  h, w, c = image_shape
  n_features = h * w * c
  out = np.empty(num_queries, np.int32)
  for i in range(num_queries):
    s = int(round(math.sqrt(p_schedule(i, num_queries, p_init=p_init, rescale=rescale)
                            * n_features / c)))
    if norm == "linf":
      s = max(s, 1)
    else:
      s = max(s, 3)
      s += 1 - s % 2
    out[i] = min(s, h, w)
  return out


def _rectangle(rows: int, cols: int) -> np.ndarray:
  """The reference's `eta_rectangles` (L2) in closed form, float64 [rows, cols]: at (i, j), with
  d the Chebyshev distance to (rows // 2, cols // 2) and K = max(rows, cols) // 2 + 1,
  sum_{k=d}^{K-1} 1 / (k + 1)^2; normalised to L2 norm 1."""
  if rows == 0:
    return np.zeros((0, cols))
  top = max(rows // 2, cols // 2) + 1
  tail = np.cumsum(1.0 / np.arange(top, 0, -1) ** 2)[::-1]  # tail[d] = sum_{k=d}^{K-1}
  d = np.maximum(np.abs(np.arange(rows) - rows // 2)[:, None],
                 np.abs(np.arange(cols) - cols // 2)[None, :])
  r = tail[d]
  return r / np.sqrt(np.sum(r ** 2))


def meta_pseudo_gaussian(size: int) -> np.ndarray:
  """The L2 update's window pattern (the reference's `eta(s)` before its random transposition),
  float32 [size, size]: rectangles of nested-square mass (`_rectangle`) on the top size // 2
  rows and, negated, on the rest; L2 norm 1."""
  if size < 1:
    raise ValueError(f"size must be >= 1, got {size}")
  eta = np.concatenate([_rectangle(size // 2, size), -_rectangle(size - size // 2, size)])
  return (eta / np.sqrt(np.sum(eta ** 2))).astype(np.float32)


def _margin(logits, y):
  """z_y - max_{k != y} z_k, float32 [n], of logits [n, K]."""
  z = logits.astype(jnp.float32)
  own = jnp.take_along_axis(z, y[:, None], axis=1)[:, 0]
  other = jnp.max(jnp.where(jax.nn.one_hot(y, z.shape[1], dtype=bool), -jnp.inf, z), axis=1)
  return own - other


def _window(top, left, s, h, w):
  """bool [n, H, W, 1]: rows top..top+s-1 and columns left..left+s-1 (top, left int [n])."""
  rows = jnp.arange(h)[None, :]
  cols = jnp.arange(w)[None, :]
  in_rows = (rows >= top[:, None]) & (rows < top[:, None] + s)
  in_cols = (cols >= left[:, None]) & (cols < left[:, None] + s)
  return (in_rows[:, :, None] & in_cols[:, None, :])[..., None]


def _channel_norm(v):
  """L2 norm per example and channel of [n, H, W, C]: [n, 1, 1, C]."""
  return jnp.sqrt(jnp.sum(v ** 2, axis=(1, 2), keepdims=True))


def _image_norm(v):
  """L2 norm per example of [n, H, W, C]: [n, 1, 1, 1]."""
  return jnp.sqrt(jnp.sum(v ** 2, axis=(1, 2, 3), keepdims=True))


# ------------------------------------------------------------------------------ random draws
# Every random number is a float32 uniform on [0, 1), drawn per example as one vector per step
# from fold_in(fold_in(fold_in(key, id), restart), step) (step 0: the start; i + 1: iteration
# i), and used as the reference uses its torch.rand numbers, in its order: a corner of a window
# of side s is floor(u * (H - s)) (its random_int(0, H - s)), a sign is -1 if u < 0.5 else +1
# (its sign(2u - 1), never 0 here), a pattern is transposed if u > 0.5 (its eta). So the
# updates are deterministic functions of these vectors, and the reference fed the same numbers
# takes the same steps (tests/square_test.py replays them).

def _restart_keys(key, ids, restart):
  """The keys [n] of examples `ids` at `restart`: fold_in(fold_in(key, id), restart)."""
  return jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(key, i), restart))(ids)


def _uniforms(keys, step, count):
  """float32 [n, count] uniforms at `step` from restart keys [n]."""
  return jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, step), (count,),
                                               jnp.float32))(keys)


def _corner(u, s, size):
  """floor(u * (size - s)), int32 (0 when s = size)."""
  span = jnp.maximum(size - s, 1)
  return jnp.minimum(jnp.floor(u * (size - s)).astype(jnp.int32), span - 1)


def _sign(u):
  return jnp.where(u < 0.5, -1.0, 1.0).astype(jnp.float32)


def _linf_start_draws(u, w, c):
  """Stripe signs float32 [n, 1, W, C] from u [n, C * W] (channel-major, as the reference's
  [N, C, 1, W])."""
  return _sign(u).reshape(-1, c, 1, w).transpose(0, 2, 3, 1)


def _linf_draws(u, s, h, w):
  """(top int32 [n], left int32 [n], signs float32 [n, C]) of a window of side s from
  u [n, 2 + C]."""
  return _corner(u[:, 0], s, h), _corner(u[:, 1], s, w), _sign(u[:, 2:])


def _l2_start_draws(u, count, c):
  """(transpose bool [n, P], signs float32 [n, P, C]) of the start's P grid windows from
  u [n, P * (1 + C)] (per window: its pattern's coin, then its channels' signs)."""
  u = u.reshape(-1, count, 1 + c)
  return u[:, :, 0] > 0.5, _sign(u[:, :, 1:])


def _l2_draws(u, s, h, w):
  """(top, left, top2, left2 int32 [n], transpose bool [n], signs float32 [n, C]) from
  u [n, 5 + C]: windows W1 and W2 of side s, W1's pattern transposed or not, its signs."""
  return (_corner(u[:, 0], s, h), _corner(u[:, 1], s, w), _corner(u[:, 2], s, h),
          _corner(u[:, 3], s, w), u[:, 4] > 0.5, _sign(u[:, 5:]))


# ----------------------------------------------------------------------------------- updates

def _linf_start(draws, x, eps, low, high):
  """x + eps * vertical stripes, clipped to bounds."""
  return jnp.clip(x + eps * draws, low, high)


def _linf_propose(draws, x, x_best, s, eps, low, high):
  """x_best with the s x s window moved to x +- eps (a sign per channel)."""
  _, h, w, _ = x.shape
  top, left, signs = draws
  step = 2.0 * eps * _window(top, left, s, h, w) * signs[:, None, None, :]
  x_new = jnp.clip(x_best + step, x - eps, x + eps)
  return jnp.clip(x_new, low, high)


def _grid_tables(h, w):
  """The L2 start's grid (the reference's): windows of side s0 = H // 5 from offset
  (H - 5 s0) // 2 every s0, H // s0 rows and W // s0 columns of them (row by row), cropped to
  the image. Returns (window index int [H, W] (-1 outside), eta at the pixel's local
  coordinates float32 [H, W], the transposed eta's [H, W], number of windows)."""
  s0 = h // 5
  start = (h - 5 * s0) // 2
  eta = meta_pseudo_gaussian(s0)
  index = np.full((h, w), -1, np.int32)
  plain = np.zeros((h, w), np.float32)
  transposed = np.zeros((h, w), np.float32)
  count = 0
  for a in range(h // s0):
    for b in range(w // s0):
      r0, c0 = start + a * s0, start + b * s0
      rows, cols = slice(r0, min(r0 + s0, h)), slice(c0, min(c0 + s0, w))
      nr, nc = rows.stop - rows.start, cols.stop - cols.start
      if nr <= 0 or nc <= 0:
        continue
      index[rows, cols] = count
      plain[rows, cols] = eta[:nr, :nc]
      transposed[rows, cols] = eta.T[:nr, :nc]
      count += 1
  return index, plain, transposed, count


def _l2_start(draws, x, eps, low, high):
  """The grid of signed meta pseudo-Gaussians, rescaled to L2 norm eps, clipped to bounds."""
  _, h, w, _ = x.shape
  index, plain, transposed, _ = _grid_tables(h, w)
  flips, signs = draws
  inside = index >= 0
  at = np.where(inside, index, 0)
  eta = jnp.where(flips[:, at], transposed, plain) * inside                      # [n, H, W]
  delta = eta[..., None] * signs[:, at]                                          # [n, H, W, C]
  return jnp.clip(x + delta / (1e-12 + _image_norm(delta)) * eps, low, high)


def _eta_tables(sizes, h, w):
  """The meta pseudo-Gaussian of every distinct window side in the top-left corner of an
  [H, W] canvas, plain and transposed: float32 [L, H, W] twice, and the level (index into
  them) of each iteration, int32 [Q]."""
  distinct = sorted(set(sizes.tolist()))
  plain = np.zeros((len(distinct), h, w), np.float32)
  transposed = np.zeros_like(plain)
  for j, s in enumerate(distinct):
    plain[j, :s, :s] = meta_pseudo_gaussian(s)
    transposed[j, :s, :s] = meta_pseudo_gaussian(s).T
  levels = np.searchsorted(np.asarray(distinct), sizes).astype(np.int32)
  return plain, transposed, levels


def _l2_propose(draws, x, x_best, s, level, tables, eps, low, high):
  """The L2 update: the mass of windows W1 and W2 moved into W1 with a fresh signed meta
  pseudo-Gaussian (module docstring); rescaled to L2 norm eps, clipped to bounds."""
  _, h, w, c = x.shape
  plain, transposed = tables
  top, left, top2, left2, flips, signs = draws
  w1 = _window(top, left, s, h, w).astype(jnp.float32)
  w2 = _window(top2, left2, s, h, w).astype(jnp.float32)
  # the pattern moved from the canvas' corner to (top, left): a roll, the canvas being zero
  # outside its top-left s x s and top + s <= H, left + s <= W
  rows = (jnp.arange(h)[None, :] - top[:, None]) % h                             # [n, H]
  cols = (jnp.arange(w)[None, :] - left[:, None]) % w                             # [n, W]
  pick = lambda t: t[level][rows[:, :, None], cols[:, None, :]]                   # [n, H, W]
  eta = jnp.where(flips[:, None, None], pick(transposed), pick(plain))
  delta = x_best - x
  old = delta * w1
  fresh = eta[..., None] * signs[:, None, None, :] + old / (1e-12 + _channel_norm(old))
  budget = jnp.sqrt(jnp.maximum(eps ** 2 - _image_norm(delta) ** 2, 0.0) / c
                    + _channel_norm(delta * jnp.maximum(w1, w2)) ** 2)
  fresh = fresh / (1e-12 + _channel_norm(fresh)) * budget
  delta = delta * (1.0 - w1) * (1.0 - w2) + fresh
  return jnp.clip(x + delta / (1e-12 + _image_norm(delta)) * eps, low, high)


_STATIC = ("norm", "num_queries", "p_init", "rescale")
_CHECK_EVERY = 25  # loop="host": iterations between two reads of "is any example active"


def _program(logits_fn, key, x, y, ids, epsilon, low, high, *, norm, num_queries, p_init,
             rescale):
  """Square on a chunk (x [n, H, W, C], y int32 [n], ids int32 [n]) as pieces: start(r, done)
  -> (keys, the restart's first state (i, x_best, margin)); body(state, keys) one query;
  finish(x_best, adv, done) -> (adv, done)."""
  _, h, w, c = x.shape
  sizes = window_sizes(num_queries, (h, w, c), norm=norm, p_init=p_init, rescale=rescale)
  if norm == "l2":
    plain, transposed, levels = _eta_tables(sizes, h, w)
    tables, levels = (jnp.asarray(plain), jnp.asarray(transposed)), jnp.asarray(levels)
  sizes = jnp.asarray(sizes)
  wrong = lambda z: jnp.argmax(logits_fn(z), axis=1) != y

  def start(r, done):
    keys = _restart_keys(key, ids, r)
    if norm == "linf":
      u = _uniforms(keys, 0, c * w)
      x_best = _linf_start(_linf_start_draws(u, w, c), x, epsilon, low, high)
    else:
      count = _grid_tables(h, w)[3]
      u = _uniforms(keys, 0, count * (1 + c))
      x_best = _l2_start(_l2_start_draws(u, count, c), x, epsilon, low, high)
    # examples broken by an earlier restart (or misclassified already) are inactive throughout
    best = jnp.where(done, -jnp.inf, _margin(logits_fn(x_best), y))
    return keys, (jnp.int32(0), x_best, best)

  def body(state, keys):
    i, x_best, best = state
    if norm == "linf":
      draws = _linf_draws(_uniforms(keys, i + 1, 2 + c), sizes[i], h, w)
      x_new = _linf_propose(draws, x, x_best, sizes[i], epsilon, low, high)
    else:
      draws = _l2_draws(_uniforms(keys, i + 1, 5 + c), sizes[i], h, w)
      x_new = _l2_propose(draws, x, x_best, sizes[i], levels[i], tables, epsilon, low, high)
    margin = _margin(logits_fn(x_new), y)
    accept = (best > 0) & ((margin < best) | (margin <= 0))  # nothing moves once best <= 0
    x_best = jnp.where(accept[:, None, None, None], x_new, x_best)
    return i + 1, x_best, jnp.where(accept, margin, best)

  def finish(x_best, adv, done):
    new = ~done & wrong(x_best)
    return jnp.where(new[:, None, None, None], x_best, adv), done | new

  return wrong, start, body, finish


@functools.partial(jax.jit, static_argnames=_STATIC)
def _square_chunk(logits_fn, key, x, y, ids, epsilon, restarts, low, high, **static):
  """Square on a chunk as one compiled program (loop="device"): x [n, H, W, C], y int32 [n],
  ids int32 [n] -> (the best point of the restart that first misclassified it, else x:
  [n, H, W, C]; misclassified bool [n]). Shapes, norm, queries and the schedule are static;
  epsilon, restarts and bounds traced."""
  wrong, start, body, finish = _program(logits_fn, key, x, y, ids, epsilon, low, high, **static)

  def restart(r, carry):
    adv, done = carry
    keys, state = start(r, done)
    if static["num_queries"]:
      cond = lambda s: (s[0] < static["num_queries"]) & jnp.any(s[2] > 0)
      state = jax.lax.while_loop(cond, lambda s: body(s, keys), state)
    return finish(state[1], adv, done)

  return jax.lax.fori_loop(0, restarts, restart, (x, wrong(x)))


WRONG, START, BODY, FINISH = range(4)  # the pieces `_program` returns, in order


@functools.partial(jax.jit, static_argnames=("piece",) + _STATIC)
def _host_piece(piece, logits_fn, key, x, y, ids, epsilon, low, high, *piece_args, **static):
  """One piece of `_program` compiled alone (loop="host"), applied to piece_args."""
  return _program(logits_fn, key, x, y, ids, epsilon, low, high, **static)[piece](*piece_args)


def _square_chunk_host(logits_fn, key, x, y, ids, epsilon, restarts, low, high, **static):
  """`_square_chunk` with its loops in Python (loop="host"): one query compiled alone, since
  XLA:CPU runs a small batch's forward pass inside a lax loop many times slower than outside
  one. Whether any example is still active is read back every 25 queries; the queries after
  every example is broken change nothing (acceptance needs a positive margin), so the results
  are the while_loop's."""
  args = (logits_fn, key, x, y, ids, epsilon, low, high)
  adv, done = x, _host_piece(WRONG, *args, x, **static)
  for r in probe.steps(int(restarts), "Square restarts"):
    keys, state = _host_piece(START, *args, jnp.int32(r), done, **static)
    for i in probe.steps(static["num_queries"], "Square queries", bound=True):
      if i % _CHECK_EVERY == 0 and probe.stops_early() and not np.any(sharding.to_host(state[2]) > 0):
        break
      state = _host_piece(BODY, *args, state, keys, **static)
    adv, done = _host_piece(FINISH, *args, state[1], adv, done, **static)
  return adv, done


def square(logits_fn, key, x, y, *, epsilon, bounds, norm="linf", num_queries=5000, p_init=0.8,
           restarts=1, rescale_schedule=False, ids=None, batch_size: int | None = None,
           loop: str | None = None) -> AttackResult:
  """The untargeted Square attack (module docstring), AutoAttack's settings by default.

  Args:
    logits_fn: pure [B, H, W, C] -> logits [B, K]; only evaluated, never differentiated.
    key: jax.random key; example e draws from fold_in(key, ids[e]).
    x: float32 [N, H, W, C] inside bounds (square windows over H x W).
    y: int32 [N] true labels.
    epsilon: the budget (>= 0) in `norm`, in the units of `bounds`.
    bounds: (low, high) valid input range.
    norm: "linf" or "l2" (L2 needs H >= 5).
    num_queries: iterations per restart (>= 0), each one query per active example (plus one
      for the start).
    p_init: the starting fraction of pixels a window covers, in (0, 1].
    restarts: attempts from fresh starts on the examples still correctly classified (>= 1).
    rescale_schedule: rescale p's schedule to num_queries (False: AutoAttack's setting).
    ids: int [N] example indices for the random streams (default 0..N-1); AutoAttack passes
      the examples' indices in its full input so a result never depends on the subset attacked.
    batch_size: examples per compiled call (default all; with loop="host" at most
      `batching.HOST_CHUNK`, which runs faster on CPU).
    loop: "device" (each chunk one compiled program), "host" (one query compiled alone and
      driven from Python: many times faster on XLA's CPU backend for small chunks) or None
      ("host" on CPU, else "device"). The same results up to float rounding.

  Returns:
    AttackResult: adversarial float32 [N, H, W, C] (x where it failed), success bool [N]
    (misclassified, within epsilon and bounds), distortions.
  """
  if norm not in NORMS:
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
  low, high, n = checks.check_attack_inputs(x, y, bounds, batch_size=batch_size)
  if np.ndim(x) != 4:
    raise ValueError(f"x must be images [N, H, W, C], got shape {np.shape(x)}")
  if norm == "l2" and np.shape(x)[1] < 5:
    raise ValueError(f"the L2 Square attack needs images of height >= 5, got {np.shape(x)}")
  checks.check_positive(epsilon, "epsilon", allow_zero=True)
  checks.check_positive(num_queries, "num_queries", allow_zero=True, integer=True)
  checks.check_positive(restarts, "restarts", integer=True)
  checks.check_positive(p_init, "p_init")
  if p_init > 1:
    raise ValueError(f"p_init must be in (0, 1], got {p_init!r}")
  ids = np.arange(n, dtype=np.int32) if ids is None else np.asarray(ids)
  if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f"ids must be int [{n}], got {ids.dtype} {ids.shape}")
  fn = as_pytree_fn(logits_fn)
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.int32)

  loop = checks.loop_mode(loop)
  run = _square_chunk if loop == "device" else _square_chunk_host

  def chunk(xc, yc, ic):
    return run(fn, key, xc, yc, ic, jnp.float32(epsilon), jnp.int32(restarts),
               jnp.float32(low), jnp.float32(high), norm=norm, num_queries=int(num_queries),
               p_init=float(p_init), rescale=bool(rescale_schedule))

  adv, wrong = batching.map_chunks(chunk, x, y, ids.astype(np.int32),
                                   desc="Square",
                                   **batching.attack_chunking(batch_size or n, loop))
  delta = jnp.asarray(adv) - x
  size = metrics.linf(delta) if norm == "linf" else metrics.l2(delta)
  slack = 1e-6 * (high - low) + (1e-5 * epsilon if norm == "l2" else 0.0)
  inside = np.all((adv >= low) & (adv <= high), axis=(1, 2, 3))
  success = jnp.asarray(wrong & inside & (np.asarray(size) <= epsilon + slack))
  return make_result(jnp.asarray(x), jnp.asarray(adv), success)
