"""Cao & Gong's region-based classification, their radius search, and certified predictions.

Region classification (Cao & Gong 2017): label x by the majority class of `num_samples` points
drawn uniformly from the L-inf cube of half-width r around x (clipped to the valid range), ties
to the lowest class index. `learn_radius` is their Algorithm 1. `certify` goes beyond the paper
with randomized-smoothing certificates (Cohen et al. 2019; uniform noise: Yang et al. 2020).

Noise is drawn per (image, sample) from fold_in(fold_in(key, image index), sample index), so the
votes of an image do not depend on how the images and samples are chunked: same key, same
votes. One compiled kernel classifies a chunk of images x a block of samples (the images split
over the devices when there are several); the radius is a traced argument, so radius searches
reuse the compiled kernel.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, probe, sharding

NOISES = ("uniform", "gaussian")


def draw_noise(key, image_ids, sample_ids, shape, noise: str = "uniform") -> jax.Array:
  """The noise of (image, sample) pairs: float32 [c, s, *shape], uniform in [-1, 1] or standard
  normal, drawn from fold_in(fold_in(key, image id), sample id) (negative sample ids, padding,
  draw sample 0's). Traceable; shared by every user of the region classifier's noise."""

  def draw(i, j):
    k = jax.random.fold_in(jax.random.fold_in(key, i), jnp.maximum(j, 0))
    if noise == "uniform":
      return jax.random.uniform(k, shape, jnp.float32, -1.0, 1.0)
    return jax.random.normal(k, shape, jnp.float32)

  return jax.vmap(jax.vmap(draw, (None, 0)), (0, None))(image_ids, sample_ids)


@functools.partial(jax.jit, static_argnames=("noise", "bounds", "num_classes"))
def _count_votes(fn, key, x, image_ids, sample_ids, scale, *, noise, bounds, num_classes):
  """Votes of a chunk of images over a block of samples.

  Args:
    x: float32 [c, *S]; image_ids int32 [c] (global image indices, for the noise);
    sample_ids int32 [s] (global sample indices; -1 = padding, not counted);
    scale: float32 [] (cube half-width, or Gaussian sigma).
  Returns:
    int32 [c, num_classes] vote counts.
  """
  shape = x.shape[1:]
  u = draw_noise(key, image_ids, sample_ids, shape, noise)  # [c, s, *S]
  probes = x[:, None] + scale * u
  if bounds is not None:
    probes = jnp.clip(probes, bounds[0], bounds[1])
  c, s = u.shape[:2]
  logits = fn(probes.reshape((c * s,) + shape))
  classes = jnp.argmax(logits, -1).reshape(c, s)
  valid = (sample_ids >= 0)[None, :, None]
  return jnp.sum(jax.nn.one_hot(classes, num_classes, dtype=jnp.int32) * valid, axis=1)


def _num_classes(fn, x) -> int:
  return int(jax.eval_shape(fn, jax.ShapeDtypeStruct((1,) + x.shape[1:], jnp.float32)).shape[-1])


def count_votes(logits_fn, key, x, *, scale, num_samples: int, bounds, noise: str = "uniform",
                batch_size: int = 4096) -> jax.Array:
  """Class counts of `num_samples` noisy copies of each input.

  Args:
    logits_fn: pure function [B, *S] -> logits [B, K].
    key: jax.random key.
    x: float32 [N, *S] inside bounds.
    scale: cube half-width (uniform) or standard deviation (gaussian), >= 0.
    num_samples: samples per input (> 0).
    bounds: (low, high) the samples are clipped to, or None.
    noise: "uniform" (the L-inf cube) or "gaussian".
    batch_size: model inputs per compiled call (the memory budget).

  Returns:
    int32 [N, K] counts (each row sums to num_samples).
  """
  if noise not in NOISES:
    raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
  checks.check_positive(scale, "radius" if noise == "uniform" else "sigma", allow_zero=True)
  checks.check_positive(num_samples, "num_samples", integer=True)
  checks.check_positive(batch_size, "batch_size", integer=True)
  if bounds is not None:
    bounds = checks.check_bounds(bounds)
    checks.check_images(x, bounds)
  x = np.asarray(x, np.float32)
  fn = as_pytree_fn(logits_fn)
  k = _num_classes(fn, x)
  n = len(x)
  block = min(num_samples, batch_size)  # samples per call
  chunk = sharding.round_up(max(1, batch_size // block))  # images per call
  sample_blocks = [np.arange(s, s + block) for s in range(0, num_samples, block)]
  sample_blocks[-1] = np.where(sample_blocks[-1] < num_samples, sample_blocks[-1], -1)
  sample_blocks = [sharding.replicate(jnp.asarray(b, jnp.int32)) for b in sample_blocks]
  key, scale = sharding.replicate((key, jnp.float32(scale)))
  pending = {}  # dispatch every chunk before reading any back (asynchronous dispatch)
  num_chunks = -(-n // chunk)
  for c in probe.chunks(num_chunks, "region votes", last_differs=n % chunk != 0):
    start = c * chunk
    # a short last chunk is padded to a sixteenth of a chunk, not to a whole chunk
    ids = np.arange(start, start + batching.padded_size(n - start, chunk))
    ids = np.where(ids < n, ids, n - 1)  # pad (fixed shapes); the padded rows are dropped below
    xc = sharding.put_batch(x[ids])  # split over the devices when there are several
    ids = sharding.put_batch(ids.astype(np.int32))
    total = 0
    for samples in sample_blocks:
      total = total + _count_votes(fn, key, xc, ids, samples, scale, noise=noise, bounds=bounds,
                                   num_classes=k)
    pending[c] = (start, total)
  counts = []
  for start, total in probe.filled(pending, num_chunks):
    counts.append(sharding.to_host(total)[:min(chunk, n - start)])
    logging.log_every_n_seconds(logging.INFO, "region votes: %d/%d inputs", 10,
                                min(start + chunk, n), n)
  return jnp.asarray(np.concatenate(counts))


def classify(logits_fn, key, x, *, radius, num_samples, bounds, batch_size: int = 4096):
  """Region classification: majority vote of uniform samples in the L-inf cube.

  Args:
    logits_fn: pure function [B, *S] -> logits [B, K].
    key: jax.random key (same key, same votes).
    x: float32 [N, *S] inside bounds.
    radius: cube half-width r >= 0 (0 is point classification).
    num_samples: samples per input.
    bounds: (low, high); samples are clipped to it.
    batch_size: model inputs per compiled call.

  Returns:
    (labels int32 [N] (ties to the lowest class index), counts int32 [N, K]).
  """
  counts = count_votes(logits_fn, key, x, scale=radius, num_samples=num_samples, bounds=bounds,
                       noise="uniform", batch_size=batch_size)
  return jnp.argmax(counts, axis=1).astype(jnp.int32), counts


def learn_radius(logits_fn, key, x, y, *, step, bounds, num_samples, initial=0.,
                 max_radius: float | None = None, batch_size: int = 4096,
                 return_history: bool = False, tolerance: float = 0.0):
  """Cao & Gong's Algorithm 1: grow r by `step` while region accuracy on (x, y) stays >= the
  point accuracy; return the last r that held.

  `tolerance` (default 0, the paper's rule) lets region accuracy fall that far below point
  accuracy before the search stops: on a small validation set one flipped image is a large step
  (1/300 of accuracy), so a reduced run may allow a fraction of a percent.

  Every radius uses the same key (common random numbers), so accuracy differences between
  radii are not sampling noise between keys. The search stops at `max_radius` (default the
  width of the valid range) and returns the last radius tried if accuracy never fell.

  Returns:
    r (float); with return_history, (r, [(radius, region accuracy), ...], point accuracy).

  Raises:
    ValueError if region accuracy at `initial` is already below point accuracy (there is no
    radius that held).
  """
  checks.check_positive(step, "step")
  checks.check_positive(initial, "initial", allow_zero=True)
  low, high = checks.check_bounds(bounds)
  max_radius = float(high - low) if max_radius is None else float(max_radius)
  checks.check_labels(y, np.shape(x)[0])
  y = np.asarray(y)
  point = float(np.mean(np.asarray(classify(logits_fn, key, x, radius=0.0, num_samples=1,
                                            bounds=bounds, batch_size=batch_size)[0]) == y))

  def accuracy(r):
    labels, _ = classify(logits_fn, key, x, radius=r, num_samples=num_samples, bounds=bounds,
                         batch_size=batch_size)
    return float(np.mean(np.asarray(labels) == y))

  r, history = float(initial), []
  acc = accuracy(r)
  history.append((r, acc))
  checks.check_positive(tolerance, "tolerance", allow_zero=True)
  floor = point - float(tolerance)
  if acc < floor and probe.stops_early():  # (a probe's barely trained model: go on)
    raise ValueError(f"region accuracy {acc:.4f} at the initial radius {initial} is already "
                     f"below point accuracy {point:.4f}" + (f" minus the tolerance {tolerance}"
                                                           if tolerance else ""))
  # radii initial + step, initial + 2 step, ... up to max_radius (no accumulated rounding)
  levels = 0
  while float(initial) + (levels + 1) * float(step) <= max_radius + 1e-9:
    levels += 1
  for i in probe.steps(levels, "radius search", bound=True):
    nxt = float(initial) + (i + 1) * float(step)
    acc = accuracy(nxt)
    history.append((nxt, acc))
    logging.info("radius %.4g: region accuracy %.4f (point %.4f)", nxt, acc, point)
    if acc < floor and probe.stops_early():
      break
    r = nxt
  return (r, history, point) if return_history else r


def clopper_pearson_lower(successes, trials, alpha: float) -> np.ndarray:
  """One-sided (1 - alpha) Clopper-Pearson lower confidence bound of a binomial proportion;
  float64 [N] (0 where successes = 0)."""
  from scipy import stats
  k, n = np.asarray(successes, np.float64), np.asarray(trials, np.float64)
  return np.where(k > 0, stats.beta.ppf(alpha, np.maximum(k, 1), n - k + 1), 0.0)


def certify(logits_fn, key, x, *, noise, scale, num_select, num_estimate, alpha, bounds,
            batch_size: int = 4096):
  """Certified region predictions (Cohen et al. 2019's CERTIFY; uniform noise: Yang et al. 2020).

  The class is chosen from `num_select` samples; its probability under the noise is bounded
  below by the one-sided Clopper-Pearson bound p_low at level `alpha` from `num_estimate` fresh
  samples. Below 1/2 the prediction abstains. Otherwise the smoothed classifier (the base model
  applied to clip(x + noise)) provably returns the class within
    gaussian (scale = sigma):            L2 radius sigma * Phi^-1(p_low),
    uniform  (scale = cube half-width):  L1 radius 2 * scale * (p_low - 1/2),
  with probability at least 1 - alpha over the samples.

  Returns:
    (labels int32 [N], -1 = abstain; radii float32 [N], 0 where abstaining).
  """
  from scipy import stats
  if noise not in NOISES:
    raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
  checks.check_positive(scale, "scale")
  checks.check_positive(num_select, "num_select", integer=True)
  checks.check_positive(num_estimate, "num_estimate", integer=True)
  if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
    raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
  select_key, estimate_key = jax.random.split(key)
  kw = dict(scale=scale, bounds=bounds, noise=noise, batch_size=batch_size)
  chosen = np.asarray(jnp.argmax(count_votes(logits_fn, select_key, x, num_samples=num_select,
                                             **kw), axis=1))
  counts = np.asarray(count_votes(logits_fn, estimate_key, x, num_samples=num_estimate, **kw))
  hits = counts[np.arange(len(chosen)), chosen]
  p_low = clopper_pearson_lower(hits, num_estimate, alpha)
  ok = p_low > 0.5
  if noise == "gaussian":
    radius = scale * stats.norm.ppf(np.clip(p_low, 0.5, 1.0))
  else:
    radius = 2.0 * scale * (p_low - 0.5)
  labels = np.where(ok, chosen, -1).astype(np.int32)
  radii = np.where(ok, radius, 0.0).astype(np.float32)
  return jnp.asarray(labels), jnp.asarray(radii)
