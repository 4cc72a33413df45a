"""Cao & Gong's evaluation protocol (their Section 6), the parts every table shares.

- `choose_images`: the evaluated test images, drawn at random among those every compared
  classifier labels correctly (their 100 images; the same for every attack and classifier).
- `all_targets`: each image paired with each of its K - 1 other classes (targeted attacks:
  100 x 9 = 900 pairs, the denominator of their targeted success rates).
- `region_success`: examples computed on the point classifier, re-scored by the region
  classifier (the "region-based" rows).
- `score`: success rate over all pairs and the mean noise (L0 / L2 / L-inf) over the successful
  ones, as their Tables 4-6 report.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from advbound import checks, metrics, region

NORMS = ("l0", "l2", "linf")


def choose_images(seed: int, labels, predictions: Sequence, num: int) -> np.ndarray:
  """`num` indices drawn uniformly without replacement among the images that every classifier
  labels correctly; int64 [num], in the order drawn.

  Args:
    labels: int [N] true labels; predictions: one int [N] array per classifier.
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
  pool = np.flatnonzero(correct)
  checks.check_positive(num, "num", integer=True)
  if num > len(pool):
    raise ValueError(f"asked for {num} images, but only {len(pool)} of {len(labels)} are "
                     "classified correctly by every classifier")
  return np.random.default_rng(seed).choice(pool, size=num, replace=False)


def all_targets(labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """(rows int64 [N (K-1)], targets int32 [N (K-1)]): image i repeated for each class != y_i,
  image by image, targets in increasing order."""
  labels = np.asarray(labels)
  checks.check_labels(labels, len(labels), num_classes)
  rows = np.repeat(np.arange(len(labels)), num_classes - 1)
  others = np.array([[t for t in range(num_classes) if t != y] for y in labels], np.int32)
  return rows, others.reshape(-1)


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
  if norm not in NORMS:
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
  success = np.asarray(success, bool)
  delta = np.asarray(adversarial, np.float32) - np.asarray(x, np.float32)
  if delta.shape[0] != success.shape[0]:
    raise ValueError(f"{delta.shape[0]} examples but {success.shape[0]} success flags")
  if norm == "l0":
    d = metrics.l0(delta, pixels=pixels)
  else:
    d = getattr(metrics, norm)(delta)
  d = np.asarray(jax.device_get(d))
  ok = int(success.sum())
  return {"success_rate": float(success.mean()) if len(success) else None,
          "noise": float(d[success].mean()) if ok else None,
          "successes": ok, "attempts": int(len(success))}
