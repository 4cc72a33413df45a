"""advbound.analysis.stability: MaxMin / MinMax on hand-made profiles and the minimax inequality;
the true-class probability, cost change and sharedness against direct computation."""

import jax
import numpy as np
import optax
import pytest

from advbound.analysis import stability


def test_hand_made_profiles():
  robust = np.ones((4, 4))
  stable = np.ones((4, 4))
  stable[2] = 0.0  # the perturbation of epoch 2 fools every model
  oscillating = 1.0 - np.eye(4)  # each model fooled by its own epoch's perturbation only
  assert float(stability.maxmin(robust)) == 1.0 and float(stability.minmax(robust)) == 1.0
  assert float(stability.maxmin(stable)) == 0.0 and float(stability.minmax(stable)) == 0.0
  assert float(stability.maxmin(oscillating)) == 1.0
  assert float(stability.minmax(oscillating)) == 0.0
  # rows are perturbation epochs, columns model epochs: a robust last model
  late = np.zeros((3, 3))
  late[:, 2] = 1.0
  assert float(stability.minmax(late)) == 1.0 and float(stability.maxmin(late)) == 1.0


def test_maxmin_is_never_below_minmax():
  p = np.random.default_rng(0).uniform(size=(500, 6, 6))
  mm, mx = np.asarray(stability.maxmin(p)), np.asarray(stability.minmax(p))
  assert mm.shape == (500,) and np.all(mm >= mx)
  np.testing.assert_allclose(mm, [min(max(r) for r in q) for q in p])
  np.testing.assert_allclose(mx, [max(min(q[:, j]) for j in range(6)) for q in p])


def _linear(W, z):
  return z.reshape(z.shape[0], -1) @ W.T


def test_probability_cost_change_and_sharedness():
  rng = np.random.default_rng(1)
  W = rng.normal(size=(3, 6)).astype(np.float32)
  fn = jax.tree_util.Partial(_linear, W)
  x = rng.uniform(0, 1, size=(40, 6)).astype(np.float32)
  y = np.argmax(x @ W.T, 1).astype(np.int32)
  z = x @ W.T
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  np.testing.assert_allclose(stability.true_class_probability(fn, x, y), p[np.arange(40), y],
                             rtol=1e-5)
  xi = rng.normal(0, 0.3, size=x.shape).astype(np.float32)
  ce = lambda v: np.asarray(optax.softmax_cross_entropy_with_integer_labels(v @ W.T, y))
  np.testing.assert_allclose(stability.cost_change(fn, x, xi, y, bounds=(0, 1)),
                             ce(np.clip(x + xi, 0, 1)) - ce(x), rtol=1e-4, atol=1e-5)
  shared = stability.sharedness(fn, xi, x, y, bounds=(0, 1))
  for i in range(40):  # every input is classified correctly here: all others count
    fooled = np.argmax(np.clip(x + xi[i], 0, 1) @ W.T, 1) != y
    assert shared[i] == pytest.approx(np.delete(fooled, i).mean())
  with pytest.raises(ValueError, match="must match"):
    stability.sharedness(fn, xi[:3], x, y, bounds=(0, 1))


def test_profile_against_softmax_of_each_model():
  rng = np.random.default_rng(2)
  Ws = [rng.normal(size=(3, 6)).astype(np.float32) for _ in range(3)]
  fns = [jax.tree_util.Partial(_linear, W) for W in Ws]
  x = rng.uniform(0, 1, size=(10, 6)).astype(np.float32)
  y = rng.integers(0, 3, 10).astype(np.int32)
  perturbed = [np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1).astype(np.float32)
               for _ in range(2)]
  p = stability.profile(fns, perturbed, y)
  assert p.shape == (10, 2, 3)
  for t1 in range(2):
    for t2 in range(3):
      z = perturbed[t1] @ Ws[t2].T
      soft = np.exp(z - z.max(1, keepdims=True))
      soft /= soft.sum(1, keepdims=True)
      np.testing.assert_allclose(p[:, t1, t2], soft[np.arange(10), y], rtol=1e-5)
