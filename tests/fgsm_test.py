"""Tests of advbound/attacks/fgsm.py: hand-computed steps, epsilon search, Foolbox agreement."""

import jax
import numpy as np
import pytest

from advbound.attacks import fgsm, fgsm_epsilon_search
from advbound.models import as_logits_fn

W = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)


def linear(x):
  """Class 0 iff x[0] > x[1]; logit gap 2 (x0 - x1)."""
  return x @ W.T


def test_matches_hand_computation():
  x = np.array([[0.6, 0.4], [0.2, 0.9]], np.float32)
  y = np.array([0, 1], np.int32)
  # d CE/dx for class 0 points along (-1, +1); for class 1 along (+1, -1)
  np.testing.assert_allclose(fgsm(linear, x, y, epsilon=0.15, bounds=(0, 1)),
                             [[0.45, 0.55], [0.35, 0.75]], atol=1e-6)
  np.testing.assert_allclose(fgsm(linear, x, y, epsilon=0.15, bounds=(0, 1), targeted=True),
                             [[0.75, 0.25], [0.05, 1.0]], atol=1e-6)  # clipped at 1


def test_epsilon_search_finds_smallest_grid_point():
  # margins x0 - x1: 0.2 needs eps > 0.1; 0.05 needs eps > 0.025; 0.9 is out of reach
  x = np.array([[0.6, 0.4], [0.525, 0.475], [0.95, 0.05]], np.float32)
  y = np.zeros(3, np.int32)
  grid = np.arange(1, 31) * 0.01
  result, eps = fgsm_epsilon_search(linear, x, y, epsilons=grid, bounds=(0, 1))
  np.testing.assert_allclose(eps, [0.11, 0.03, np.inf], atol=1e-6)
  np.testing.assert_array_equal(result.success, [True, True, False])
  np.testing.assert_allclose(result.adversarial[0], [0.49, 0.51], atol=1e-6)
  np.testing.assert_array_equal(result.adversarial[2], x[2])  # failure: the input back
  assert float(result.distortion["linf"][2]) == 0.0
  with pytest.raises(ValueError, match="increasing grid"):
    fgsm_epsilon_search(linear, x, y, epsilons=[0.2, 0.1], bounds=(0, 1))


@pytest.mark.xdist_group(name="quickstart")
def test_equals_foolbox_fgsm(quickstart_natural):
  """Identical to Foolbox's FGSM at every pixel whose gradient is above rounding noise.

  The two libraries' cross-entropy gradients agree to ~3e-7 absolute; where |dCE/dx| is below
  1e-5 (saturated images: ~1e-13) the sign is rounding noise of two differently written
  cross-entropies, so those pixels are not compared."""
  import foolbox as fb
  import optax
  model, _, test = quickstart_natural
  fn = as_logits_fn(model)
  x, y = test.images[:256], test.labels[:256]
  _, theirs, _ = fb.attacks.FGSM()(fb.JAXModel(fn, bounds=(0, 1)), jax.numpy.asarray(x),
                                   jax.numpy.asarray(y), epsilons=0.3)
  ours = np.asarray(fgsm(fn, x, y, epsilon=0.3, bounds=(0, 1)))
  grad = jax.grad(lambda z: optax.softmax_cross_entropy_with_integer_labels(fn(z), y).sum())(x)
  informative = np.abs(np.asarray(grad)) > 1e-5
  assert informative.sum() >= 5000, informative.sum()
  np.testing.assert_allclose(ours[informative], np.asarray(theirs)[informative], atol=1e-6)
