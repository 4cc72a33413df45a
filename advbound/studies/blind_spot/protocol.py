"""The blind-spot study's rules, as pure functions: the attack's starting points, its success
at a threshold, distance bins (Figures 1-3) and the two-sample comparison (Figure 5)."""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from advbound import stats
from advbound.analysis import scale_shift


def pairs(alphas) -> tuple[tuple[float, float], ...]:
  """The (alpha, beta) grid, beta on the paper's [-0.5, 0.5] scale: (1, 0) first."""
  return scale_shift.grid(alphas)


def start(kind: str, x: np.ndarray, *, bounds, noise_std: float, seed: int) -> np.ndarray:
  """The attack's first iterate for images x [n, ...] (the paper's two schemes):

  "noise": x plus Gaussian noise of std noise_std on the paper's [-0.5, 0.5] scale (noise_std *
    (high - low) here), one draw per image from `seed` (the same draw at every (alpha, beta));
  "grey": the blank grey image, 0 on the paper's scale ((low + high) / 2 here).
  Both are clipped into bounds by the attack.
  """
  low, high = bounds
  if kind == "noise":
    noise = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    return x + np.float32(noise_std * (high - low)) * noise
  if kind == "grey":
    return np.full(x.shape, (low + high) / 2, np.float32)
  raise ValueError(f"unknown start {kind!r}; expected 'noise' or 'grey'")


def best_of_starts(found, linf):
  """Per image, the smallest L-inf distortion over the starts that found an example.

  Args: found: bool [S, n]; linf: float [S, n] (ignored where not found).
  Returns: float32 [n], inf where no start found one.
  """
  found, linf = np.asarray(found, bool), np.asarray(linf, np.float32)
  if found.shape != linf.shape:
    raise ValueError(f"found {found.shape} and linf {linf.shape} must have one shape")
  return np.where(found, linf, np.inf).min(axis=0).astype(np.float32)


def success(correct, distortion, threshold: float) -> dict:
  """Success at an L-inf threshold, counted over the correctly classified inputs only.

  Args:
    correct: bool [n], the model classifies the (transformed) input correctly.
    distortion: float [n], the smallest L-inf distortion of an example found (inf: none); only
      read where `correct`.
    threshold: an example counts when its distortion is at most this (compared in float32).

  Returns:
    a `stats.proportion` cell {"rate", "successes", "n", "low", "high", ...} (95% Wilson
    interval) with the older keys "success_rate" (= rate; None if nothing was attacked) and
    "attempts" (= n).
  """
  correct = np.asarray(correct, bool)
  distortion = np.asarray(distortion, np.float32)
  if correct.shape != distortion.shape:
    raise ValueError(f"correct {correct.shape} and distortion {distortion.shape} differ")
  attempts = int(correct.sum())
  # in float32, as the attack measures distortions and compares them with its stop_below
  successes = int(np.sum(correct & (distortion <= np.float32(threshold))))
  return dict(stats.proportion(successes, attempts),
              success_rate=successes / attempts if attempts else None, attempts=attempts)


def binned(distance, attacked_distance, succeeded, bins: int) -> dict:
  """Figures 1-3: success rate and distance histogram per distance bin.

  Args:
    distance: float [T], every test image's distance (the histogram, and the bins' range).
    attacked_distance: float [n], the distances of the attacked (correctly classified) images.
    succeeded: bool [n], their attack's success at epsilon.
    bins: equal-width bins over [min, max] of `distance`.

  Returns:
    {"edges" [bins + 1], "counts" [bins] (all test images), "attempts", "successes" [bins],
    "success_rate" [bins] (None where no attacked image falls), "cells" [bins]: the
    `stats.proportion` of each bin}.
  """
  distance = np.asarray(distance, np.float64)
  attacked_distance = np.asarray(attacked_distance, np.float64)
  succeeded = np.asarray(succeeded, bool)
  edges = np.histogram_bin_edges(distance, bins=int(bins))
  counts = np.histogram(distance, edges)[0]
  # attacked images beyond the test range (none when they are among the test images) go to
  # the outer bins
  which = np.clip(np.searchsorted(edges, attacked_distance, side="right") - 1, 0, int(bins) - 1)
  attempts = np.bincount(which, minlength=int(bins))
  successes = np.bincount(which, weights=succeeded, minlength=int(bins)).astype(int)
  rate = [None if a == 0 else float(s / a) for s, a in zip(successes, attempts)]
  return dict(edges=edges.tolist(), counts=counts.tolist(), attempts=attempts.tolist(),
              successes=successes.tolist(), success_rate=rate,
              cells=[stats.proportion(int(s), int(a)) for s, a in zip(successes, attempts)])


def auc(positive, negative) -> float | None:
  """P(a positive value > a negative one) + P(equal) / 2: the ROC AUC of a threshold on the
  value separating the two groups (Mann-Whitney U / (n1 n2)); None if a group is empty."""
  positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
  if positive.size == 0 or negative.size == 0:
    return None
  neg = np.sort(negative)
  below = np.searchsorted(neg, positive, side="left")
  equal = np.searchsorted(neg, positive, side="right") - below
  return float((below.sum() + 0.5 * equal.sum()) / (positive.size * negative.size))


def auc_interval(positive, negative, *, seed: int, resamples: int) -> dict:
  """`stats.bootstrap` cell of `auc`, the two groups resampled independently."""
  return stats.bootstrap((np.asarray(positive, np.float64), np.asarray(negative, np.float64)),
                         auc, seed=seed, num_resamples=resamples)


def distance_trend(attacked_distance, succeeded, *, seed: int, resamples: int) -> dict:
  """How success grows with distance: the AUC of distance separating successful from failed
  attacks (0.5: no relation, 1: every success farther than every failure; `auc_ci` its
  bootstrap cell over `resamples` resamples from `seed`), with the two-sided
  Mann-Whitney p-value, and the success rate in the nearest and farthest quarters (also as
  `stats.proportion` cells, and their Newcombe difference, farthest minus nearest)."""
  d = np.asarray(attacked_distance, np.float64)
  s = np.asarray(succeeded, bool)
  out = dict(auc=auc(d[s], d[~s]), p_value=None, nearest_quarter=None, farthest_quarter=None,
             auc_ci=auc_interval(d[s], d[~s], seed=seed, resamples=resamples))
  if s.any() and (~s).any():
    out["p_value"] = float(scipy_stats.mannwhitneyu(d[s], d[~s],
                                                    alternative="two-sided").pvalue)
  if d.size >= 4:
    order = np.argsort(d, kind="stable")
    q = d.size // 4
    out["nearest_quarter"] = float(s[order[:q]].mean())
    out["farthest_quarter"] = float(s[order[-q:]].mean())
    out["nearest_cell"] = stats.of(s[order[:q]])
    out["farthest_cell"] = stats.of(s[order[-q:]])
    out["quarters_difference"] = stats.difference(int(s[order[-q:]].sum()), q,
                                                  int(s[order[:q]].sum()), q)
  return out


def shift(original, transformed, *, seed: int, resamples: int) -> dict:
  """Figure 5: how far the transformation moves the distances to the training set.

  Kolmogorov-Smirnov two-sample statistic and p-value, the means and standard deviations, the
  mean shift in units of the original standard deviation, and the AUC of detecting a
  transformed input by a threshold on its distance (0.5: undetectable); bootstrap cells
  (`resamples` resamples from `seed`) of the two means and of the AUC. The two samples are the
  same images before and after the transformation, so the AUC's bootstrap resamples images,
  each with its original and its transformed distance (paired)."""
  a, b = np.asarray(original, np.float64), np.asarray(transformed, np.float64)
  ks = scipy_stats.ks_2samp(a, b)
  std = float(a.std())
  return dict(ks_statistic=float(ks.statistic), ks_p_value=float(ks.pvalue),
              mean_original=float(a.mean()), mean_transformed=float(b.mean()),
              std_original=std, std_transformed=float(b.std()),
              mean_shift_in_std=float((b.mean() - a.mean()) / std) if std > 0 else None,
              detection_auc=auc(b, a),
              mean_original_ci=stats.bootstrap(a, seed=seed, num_resamples=resamples),
              mean_transformed_ci=stats.bootstrap(b, seed=seed, num_resamples=resamples),
              detection_auc_ci=paired_auc_interval(b, a, seed=seed, resamples=resamples))


def paired_auc_interval(positive, negative, *, seed: int, resamples: int) -> dict:
  """`stats.bootstrap` cell of `auc` over resamples of the pairs (positive[i], negative[i]):
  the two values of one image are drawn together. positive, negative: float [n] each."""
  positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
  if positive.shape != negative.shape:
    raise ValueError(f"paired values differ in shape: {positive.shape} vs {negative.shape}")
  cell = stats.bootstrap(np.arange(positive.size, dtype=np.float64),
                         lambda i: auc(positive[i.astype(int)], negative[i.astype(int)]),
                         seed=seed, num_resamples=resamples)
  cell["n"] = [int(positive.size), int(negative.size)]
  return cell
