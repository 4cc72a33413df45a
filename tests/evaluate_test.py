"""Tests of advbound/analysis/evaluate.py and advbound/runtime/checks.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advbound.analysis import evaluate
from advbound.runtime import checks

W = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)


def linear(x):
  """Two classes: class 0 iff x[0] > x[1], for 'images' [N, 2]."""
  return x @ W.T


def test_accuracy_matches_hand_count():
  x = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45]], np.float32)
  y = np.array([0, 1, 1, 1, 0], np.int32)  # the third is wrong
  assert evaluate.accuracy(linear, x, y, batch_size=2) == pytest.approx(0.8)
  np.testing.assert_array_equal(evaluate.predict(linear, x, batch_size=3), [0, 1, 0, 1, 0])


def test_pgd_accuracy_on_linear_model():
  # margins |x0 - x1| of 0.1 and 0.5; an L-inf step of eps moves the margin by 2 eps.
  x = np.array([[0.55, 0.45], [0.75, 0.25]], np.float32)
  y = np.zeros(2, np.int32)
  kw = dict(bounds=(0.0, 1.0), step_size=0.01, num_steps=40, random_start=False)
  assert evaluate.pgd_accuracy(linear, jax.random.key(0), x, y, epsilon=0.1, **kw) == 0.5
  assert evaluate.pgd_accuracy(linear, jax.random.key(0), x, y, epsilon=0.02, **kw) == 1.0
  assert evaluate.pgd_accuracy(linear, jax.random.key(0), x, y, epsilon=0.3, **kw) == 0.0


def test_nan_logits_are_an_error():
  broken = lambda x: jnp.where(x[:, :1] > 0.5, jnp.nan, 0.0) * jnp.ones((1, 2))
  with pytest.raises(FloatingPointError, match="NaN or inf for 1 of 3 inputs"):
    evaluate.predict(broken, np.array([[0.1, 0], [0.9, 0], [0.2, 0]], np.float32))


def test_checks():
  assert checks.check_bounds((0, 255)) == (0.0, 255.0)
  for bad in [(1, 1), (0, float("inf")), (0,), "ab"]:
    with pytest.raises(ValueError, match="bounds"):
      checks.check_bounds(bad)
  assert checks.check_positive(3, "n", integer=True) == 3
  for bad in [0, -1, float("nan"), True, "3"]:
    with pytest.raises(ValueError, match="radius must be a finite number > 0"):
      checks.check_positive(bad, "radius")
  checks.check_positive(0.0, "eps", allow_zero=True)
  with pytest.raises(ValueError, match="x contains NaN"):
    checks.check_images(np.array([[np.nan]]), (0, 1))
  with pytest.raises(ValueError, match="labels must have shape"):
    checks.check_labels(np.zeros((2, 1), np.int32), 2, name="labels")
  with pytest.raises(ValueError, match="integer class indices"):
    checks.check_labels(np.zeros(2, np.float32), 2)
  with pytest.raises(ValueError, match="label 10 outside"):
    checks.check_labels(np.array([0, 10]), 2, num_classes=10)
