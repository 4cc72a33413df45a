"""Cao & Gong's evaluation protocol (their Section 6), the parts every table shares.

- `choose_images`: the evaluated test images, drawn at random among those the given
  classifiers label correctly (the paper: "100 testing benign examples that the standard
  point-based DNN correctly classifies"; the same images for every attack and classifier).
  `DRAWS` names the two rules a config can pick (`evaluation.draw`).
- `all_targets`: each image paired with each of its K - 1 other classes (targeted attacks:
  100 x 9 = 900 pairs, the denominator of their targeted success rates).
- `region_success`: examples computed on the point classifier, re-scored by the region
  classifier (the "region-based" rows).
- `score` / `rates`: success rate over all pairs and the mean noise (L0 / L2 / L-inf) over the
  successful ones, as their Tables 4-6 report, with its denominator and 95% interval
  (`advbound.stats`); a region row scored over several noise draws also carries their spread.
- `query_key`: the key of one query of the deployed region classifier (a fresh noise draw per
  query set and draw index: same seed, same numbers).
"""

from __future__ import annotations

import zlib
from typing import Callable, Sequence

import jax
import numpy as np

from advbound import metrics, region, stats
from advbound.runtime import checks, probe

NORMS = ("l0", "l2", "linf")
# evaluation.draw: "standard" draws among the images the standard point classifier (study.point)
# labels correctly (the paper); "all_correct" among those every point classifier and the region
# classifier label correctly (stricter; biases every row towards easy images)
DRAWS = ("standard", "all_correct")
NOISE_RESAMPLES = 1000  # bootstrap resamples of a cell's mean noise


def choose_images(seed: int, labels, predictions: Sequence, num: int, *,
                  verify: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
  """`num` indices drawn uniformly without replacement among the images that every classifier
  of `predictions` labels correctly; int64 [num], in the order drawn.

  Args:
    labels: int [N] true labels; predictions: one int [N] array per classifier (the paper's
      draw passes only the standard point classifier's).
    verify: optional further check of candidates (e.g. the region classifier, too costly to run
      on all N): indices int [C] -> bool [C]. Candidates are checked in the drawn order, `num`
      at a time, and those it rejects are skipped; the result is the first `num` accepted.
  """
  labels = np.asarray(labels)
  if not predictions:
    raise ValueError("choose_images needs the predictions of at least one classifier")
  correct = np.ones(len(labels), bool)
  for p in predictions:
    p = np.asarray(p)
    if p.shape != labels.shape:
      raise ValueError(f"predictions of shape {p.shape} do not match labels {labels.shape}")
    correct &= p == labels
  if probe.active() and correct.sum() < num:  # --estimate's barely trained models
    correct[:] = True
  pool = np.flatnonzero(correct)
  checks.check_positive(num, "num", integer=True)
  if num > len(pool):
    raise ValueError(f"asked for {num} images, but only {len(pool)} of {len(labels)} are "
                     "classified correctly by every classifier of the draw")
  order = np.random.default_rng(seed).permutation(pool)
  if verify is None:
    return order[:num]
  chosen = []
  for lo in range(0, len(order), num):
    block = order[lo:lo + num]
    chosen.extend(block[np.asarray(verify(block), bool)].tolist())
    if len(chosen) >= num:
      return np.asarray(chosen[:num], np.int64)
  raise ValueError(f"asked for {num} images, but only {len(chosen)} of {len(labels)} are "
                   "classified correctly by every classifier and pass `verify`")


def all_targets(labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """(rows int64 [N (K-1)], targets int32 [N (K-1)]): image i repeated for each class != y_i,
  image by image, targets in increasing order."""
  labels = np.asarray(labels)
  checks.check_labels(labels, len(labels), num_classes)
  rows = np.repeat(np.arange(len(labels)), num_classes - 1)
  others = np.array([[t for t in range(num_classes) if t != y] for y in labels], np.int32)
  return rows, others.reshape(-1)


def query_key(seed: int, query: str, draw: int = 0):
  """The key of draw `draw` of the region classifier's queries named `query` (e.g. an attack's
  artifact stem): fold_in(fold_in(key(seed), crc32(query)), draw). Different queries and draws
  get independent noise, as a deployed region classifier draws fresh noise at every query."""
  checks.check_positive(draw, "draw", integer=True, allow_zero=True)
  key = jax.random.fold_in(jax.random.key(int(seed)), zlib.crc32(query.encode()) & 0x7FFFFFFF)
  return jax.random.fold_in(key, int(draw))


def region_labels(logits_fn, x, *, radius: float, bounds, region_cfg, query: str,
                  draw: int = 0) -> np.ndarray:
  """The deployed region classifier's labels int32 [M] of x [M, *S] at one noise draw:
  region.classify with the study's `region` section (num_samples m, seed, batch_size) and the
  key `query_key(seed, query, draw)`."""
  labels, _ = region.classify(logits_fn, query_key(region_cfg.seed, query, draw), x,
                              radius=radius, num_samples=int(region_cfg.num_samples),
                              bounds=bounds, batch_size=int(region_cfg.batch_size))
  return np.asarray(labels, np.int32)


def region_draws(logits_fn, x, *, radius: float, bounds, region_cfg, query: str) -> np.ndarray:
  """int32 [D, M]: the region labels of x [M, *S] at each of the D = region.score_draws
  independent noise draws of `query`."""
  return np.stack([region_labels(logits_fn, x, radius=radius, bounds=bounds,
                                 region_cfg=region_cfg, query=query, draw=d)
                   for d in range(int(region_cfg.score_draws))])


def region_success(logits_fn, key, adversarial, goal, *, targeted: bool, radius: float,
                   num_samples: int, bounds, batch_size: int = 4096) -> np.ndarray:
  """Whether the region classifier is fooled by each example: bool [M].

  goal: int [M], the target (targeted: success iff the region label equals it) or the true
  label (untargeted: success iff the region label differs from it).
  """
  labels, _ = region.classify(logits_fn, key, adversarial, radius=radius,
                              num_samples=num_samples, bounds=bounds, batch_size=batch_size)
  labels = np.asarray(labels)
  goal = np.asarray(goal)
  return labels == goal if targeted else labels != goal


def score(x, adversarial, success, norm: str, *, pixels: bool = False) -> dict:
  """{"success_rate", "noise", "successes", "attempts"}: the fraction of successful examples and
  the mean `norm` of their perturbations (None when none succeeded).

  Args:
    x, adversarial: float32 [M, *S] (the attacked inputs, one row per pair, and the examples).
    success: bool [M] (as judged by the classifier under evaluation).
    norm: "l0", "l2" or "linf" (in the data's units).
    pixels: L0 counts changed pixels of colour images, not values (Cao & Gong on CIFAR-10).
  """
  success = np.asarray(success, bool)
  if np.shape(adversarial)[0] != success.shape[0]:
    raise ValueError(f"{np.shape(adversarial)[0]} examples but {success.shape[0]} success flags")
  return rates(success, noise(x, adversarial, norm, pixels=pixels))


def noise(x, adversarial, norm: str, *, pixels: bool = False, chunk: int = 4096) -> np.ndarray:
  """float32 [M]: the `norm` of each perturbation adversarial - x (L0 in changed pixels of
  colour images with `pixels`), computed in chunks of rows."""
  if norm not in NORMS:
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
  x = np.asarray(x, np.float32)
  adversarial = np.asarray(adversarial, np.float32)
  if x.shape != adversarial.shape:
    raise ValueError(f"x {x.shape} and adversarial {adversarial.shape} differ in shape")
  out = []
  for lo in range(0, len(x), chunk):
    delta = adversarial[lo:lo + chunk] - x[lo:lo + chunk]
    d = metrics.l0(delta, pixels=pixels) if norm == "l0" else getattr(metrics, norm)(delta)
    out.append(np.asarray(jax.device_get(d), np.float32))
  return np.concatenate(out) if out else np.zeros((0,), np.float32)


def best_of(noises, successes) -> tuple[np.ndarray, np.ndarray]:
  """Per column, the smallest noise among the successful candidates (Cao & Gong's untargeted and
  combined attacks keep the successful example of smallest noise).

  Args:
    noises: float [C, N]; successes: bool [C, N] (C candidates of N attacks).

  Returns:
    (success bool [N]: some candidate succeeded, noise float32 [N]: the smallest successful
    noise, inf where none succeeded).
  """
  noises = np.asarray(noises, np.float32)
  successes = np.asarray(successes, bool)
  if noises.shape != successes.shape or noises.ndim != 2:
    raise ValueError(f"noises {noises.shape} and successes {successes.shape} must be equal "
                     "[C, N] shapes")
  return successes.any(0), np.where(successes, noises, np.inf).min(0)


def rates(success, noises, *, seed: int = 0) -> dict:
  """One cell of the tables: a `stats.proportion` of the successes ({"rate", "successes", "n",
  "low", "high", ...}) with the legacy keys {"success_rate", "successes", "attempts", "noise"}
  and "noise_ci", a bootstrap interval of the mean noise over the successful examples (None
  where none succeeded).

  Args:
    success: bool [M] (one evaluation) or [D, M] (a region row at D independent noise draws of
      the same M examples).
    noises: float [M] or [D, M] (broadcast against success).
    seed: the bootstrap's seed.

  With D draws the counts are pooled over the D x M queries, and the cell adds
  "draws": `stats.spread` of the D per-draw rates, and "per_query": `per_query` of the mean
  rate (the interval as if from one query per example, n = M: wider than the pooled interval,
  which treats the D draws of an example as independent trials; the report judges claims and
  the paper's numbers on it).
  """
  success = np.asarray(success, bool)
  drawn = success.ndim == 2
  success = success if drawn else success[None]
  noises = np.broadcast_to(np.asarray(noises, np.float64), success.shape)
  ok = int(success.sum())
  cell = stats.proportion(ok, int(success.size))
  good = noises[success]
  cell.update(success_rate=cell["rate"], attempts=int(success.size),
              noise=float(good.mean()) if ok else None,
              noise_ci=stats.bootstrap(good, seed=seed, num_resamples=NOISE_RESAMPLES)
              if ok else None)
  if drawn:
    m = success.shape[1]
    per_draw = success.mean(1) if m else np.zeros(len(success))
    cell["draws"] = stats.spread(per_draw)
    cell["per_query"] = per_query(float(per_draw.mean()), m)
  return cell


def per_query(rate: float, m: int) -> dict:
  """The interval of a mean rate over noise draws as if from one query per example: a
  `stats.proportion` cell of n = m whose "rate" is the mean itself, "successes" the nearest
  whole count (for `stats.difference`), and [low, high] the envelope of the Wilson intervals of
  floor(rate m) and ceil(rate m) successes (so a fractional count never narrows it)."""
  if m == 0:
    return stats.proportion(0, 0)
  k = rate * m
  cell = stats.proportion(int(round(k)), m)
  cell.update(rate=rate, low=stats.proportion(int(np.floor(k + 1e-9)), m)["low"],
              high=stats.proportion(int(np.ceil(k - 1e-9)), m)["high"])
  return cell
