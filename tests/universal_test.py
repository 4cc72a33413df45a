"""advbound.attacks.universal: Metzen et al.'s batch-sign universal perturbation against its
closed form on a linear model, its step arithmetic and bound, determinism, bad input."""

import jax
import numpy as np
import pytest

from advbound.attacks import universal


def _linear(W, b, z):
  return z.reshape(z.shape[0], -1) @ W.T + b


def _model(W, b):
  return jax.tree_util.Partial(_linear, np.asarray(W, np.float32), np.asarray(b, np.float32))


def _data(seed=0, n=64, d=12):
  rng = np.random.default_rng(seed)
  # small weights: logits within ~10 of each other, so no batch's p_1 underflows to 0 (a zero
  # mean gradient has sign 0 and its batch would not move Xi)
  W = (rng.normal(size=(2, d)) / 200).astype(np.float32)
  x = rng.uniform(0, 255, size=(n, d)).astype(np.float32)
  return W, x


@pytest.mark.parametrize("iterations,expected", [(1, 2.5), (3, 7.5), (4, 10.0), (9, 10.0)])
def test_linear_model_closed_form(iterations, expected):
  """For a linear 2-class model and labels 0, every input's loss gradient is p_1 (W_1 - W_0)
  (p_1 > 0), so each of the K batch signs is sign(W_1 - W_0) and one iteration adds alpha times
  it: Xi_n = clip(n alpha sign(W_1 - W_0), -eps, eps)."""
  W, x = _data()
  y = np.zeros(len(x), np.int32)
  xi = universal.universal_perturbation(_model(W, np.zeros(2)), jax.random.key(0), x, y,
                                        epsilon=10.0, step_size=2.5, bounds=(0.0, 255.0),
                                        batch_size=16, batches_per_step=4,
                                        num_iterations=iterations)
  np.testing.assert_allclose(np.asarray(xi), expected * np.sign(W[1] - W[0]), rtol=1e-6)


def test_steps_are_multiples_of_alpha_over_k_and_bounded():
  rng = np.random.default_rng(1)
  W = rng.normal(size=(5, 12)).astype(np.float32)
  x = rng.uniform(0, 1, size=(200, 12)).astype(np.float32)
  fn = _model(W, np.zeros(5))
  y = np.argmax(np.asarray(fn(x)), 1).astype(np.int32)  # the model's own labels
  kw = dict(epsilon=0.1, step_size=0.03, bounds=(0.0, 1.0), batch_size=8, batches_per_step=3,
            num_iterations=2)
  xi = np.asarray(universal.universal_perturbation(fn, jax.random.key(2), x, y, **kw))
  # two iterations of three signs of 0.01 each: a multiple of 0.01 in [-0.06, 0.06]
  np.testing.assert_allclose(xi / 0.01, np.round(xi / 0.01), atol=1e-4)
  assert np.abs(xi).max() <= 0.06 + 1e-7
  long = np.asarray(universal.universal_perturbation(fn, jax.random.key(2), x, y,
                                                     **dict(kw, num_iterations=30)))
  assert np.abs(long).max() <= 0.1 + 1e-7
  np.testing.assert_array_equal(
      long, universal.universal_perturbation(fn, jax.random.key(2), x, y,
                                             **dict(kw, num_iterations=30)))
  zero = universal.universal_perturbation(fn, jax.random.key(2), x, y,
                                          **dict(kw, num_iterations=0))
  np.testing.assert_array_equal(zero, 0.0)
  assert universal.accuracy_under(fn, np.zeros(12), x, y, bounds=(0.0, 1.0)) == 1.0
  assert universal.accuracy_under(fn, long, x, y, bounds=(0.0, 1.0)) < 1.0


def test_bad_input():
  W, x = _data()
  fn = _model(W, np.zeros(2))
  y = np.zeros(len(x), np.int32)
  with pytest.raises(ValueError, match="batch_size"):
    universal.universal_perturbation(fn, jax.random.key(0), x, y, epsilon=1.0, step_size=1.0,
                                     bounds=(0.0, 255.0), batch_size=65)
  with pytest.raises(ValueError, match="epsilon"):
    universal.universal_perturbation(fn, jax.random.key(0), x, y, epsilon=-1.0, step_size=1.0,
                                     bounds=(0.0, 255.0))
