"""Tests of advbound/attacks/pgd.py against hand-computed answers and invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from advbound.analysis import evaluate
from advbound.attacks import pgd
from advbound.models import as_logits_fn

W = np.array([[1.0, -2.0, 0.5, 0.0], [-1.0, 1.0, 0.0, 3.0], [0.0, 0.5, -1.0, 1.0]], np.float32)


def linear(x):
  """A 3-class linear model of 4-pixel 'images' [N, 4]."""
  return x @ W.T


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_one_step_matches_hand_computation():
  x = np.array([[0.5, 0.5, 0.5, 0.5], [0.1, 0.9, 0.2, 0.95]], np.float32)
  y = np.array([0, 2], np.int32)
  eps = 0.1
  # d CE / dx = W^T (softmax(Wx) - onehot(y))
  grad = (_softmax(x @ W.T) - np.eye(3)[y]) @ W
  expected = np.clip(x + eps * np.sign(grad), 0, 1)
  got = pgd(linear, jax.random.key(0), x, y, epsilon=eps, step_size=eps, num_steps=1,
            bounds=(0.0, 1.0), random_start=False)
  np.testing.assert_allclose(got, expected, atol=1e-6)
  # targeted: the step goes down the target's loss
  t = np.array([1, 1], np.int32)
  grad_t = (_softmax(x @ W.T) - np.eye(3)[t]) @ W
  got_t = pgd(linear, jax.random.key(0), x, t, epsilon=eps, step_size=eps, num_steps=1,
              bounds=(0.0, 1.0), random_start=False, targeted=True)
  np.testing.assert_allclose(got_t, np.clip(x - eps * np.sign(grad_t), 0, 1), atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(eps=st.floats(0.0, 0.6), step=st.floats(0.0, 0.5), steps=st.integers(0, 6),
       seed=st.integers(0, 2**16), random_start=st.booleans())
def test_stays_in_ball_and_bounds(eps, step, steps, seed, random_start):
  x = np.asarray(jax.random.uniform(jax.random.key(seed), (5, 4)))
  y = np.arange(5) % 3
  adv = np.asarray(pgd(linear, jax.random.key(seed + 1), x, y, epsilon=eps, step_size=step,
                       num_steps=steps, bounds=(0.0, 1.0), random_start=random_start))
  assert np.all(np.abs(adv - x) <= eps + 1e-6)
  assert adv.min() >= 0.0 and adv.max() <= 1.0


def test_deterministic_under_key():
  x = np.full((4, 4), 0.5, np.float32)
  y = np.zeros(4, np.int32)
  kw = dict(epsilon=0.2, step_size=0.05, num_steps=3, bounds=(0.0, 1.0))
  a = pgd(linear, jax.random.key(3), x, y, **kw)
  b = pgd(linear, jax.random.key(3), x, y, **kw)
  c = pgd(linear, jax.random.key(4), x, y, **kw)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize("kwargs,match", [
    (dict(epsilon=-0.1), "epsilon"), (dict(step_size=float("nan")), "step_size"),
    (dict(num_steps=2.5), "num_steps"), (dict(bounds=(1.0, 0.0)), "bounds"),
])
def test_bad_arguments(kwargs, match):
  kw = dict(epsilon=0.1, step_size=0.01, num_steps=2, bounds=(0.0, 1.0))
  kw.update(kwargs)
  with pytest.raises(ValueError, match=match):
    pgd(linear, jax.random.key(0), np.zeros((2, 4), np.float32), np.zeros(2, np.int32), **kw)


def test_bad_inputs():
  kw = dict(epsilon=0.1, step_size=0.01, num_steps=2, bounds=(0.0, 1.0))
  with pytest.raises(ValueError, match="outside bounds"):
    pgd(linear, jax.random.key(0), np.full((2, 4), 1.5, np.float32), np.zeros(2, np.int32), **kw)
  with pytest.raises(ValueError, match="shape"):
    pgd(linear, jax.random.key(0), np.zeros((2, 4), np.float32), np.zeros(3, np.int32), **kw)


@pytest.mark.xdist_group(name="quickstart")  # shares the session-scoped trained model
def test_lowers_accuracy_of_trained_model(quickstart_natural):
  model, _, test = quickstart_natural
  fn = as_logits_fn(model)
  x, y = test.images[:200], test.labels[:200]
  clean = evaluate.accuracy(fn, x, y)
  attacked = evaluate.pgd_accuracy(fn, jax.random.key(0), x, y, bounds=test.bounds,
                                   epsilon=0.3, step_size=0.01, num_steps=40)
  assert clean > 0.95
  assert attacked < 0.2  # a naturally trained MNIST model is not robust at eps 0.3
  adv = pgd(fn, jax.random.key(0), x, y, epsilon=0.3, step_size=0.01, num_steps=40,
            bounds=test.bounds)
  assert float(jnp.max(jnp.abs(adv - x))) <= 0.3 + 1e-6
  assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_l2_one_step_and_ball():
  x = np.array([[0.5, 0.5, 0.5, 0.5]], np.float32)
  y = np.array([0], np.int32)
  grad = (_softmax(x @ W.T) - np.eye(3)[y]) @ W
  step = grad / np.linalg.norm(grad)
  got = pgd(linear, jax.random.key(0), x, y, epsilon=1.0, step_size=0.2, num_steps=1,
            bounds=(0.0, 1.0), random_start=False, norm="l2")
  np.testing.assert_allclose(got, np.clip(x + 0.2 * step, 0, 1), atol=1e-6)
  # many steps and a random start never leave the L2 ball or the bounds
  xs = np.asarray(jax.random.uniform(jax.random.key(1), (6, 4)))
  adv = np.asarray(pgd(linear, jax.random.key(2), xs, np.arange(6) % 3, epsilon=0.25,
                       step_size=0.1, num_steps=10, bounds=(0.0, 1.0), norm="l2"))
  assert np.all(np.linalg.norm(adv - xs, axis=1) <= 0.25 + 1e-5)
  assert adv.min() >= 0.0 and adv.max() <= 1.0
  with pytest.raises(ValueError, match="unknown norm 'l1'"):
    pgd(linear, jax.random.key(0), x, y, epsilon=1.0, step_size=0.2, num_steps=1,
        bounds=(0.0, 1.0), norm="l1")


@pytest.mark.parametrize("norm,random_start,targeted", [("linf", True, False),
                                                        ("l2", False, True)])
def test_host_and_device_loops_agree(norm, random_start, targeted):
  """loop="host" (one step jitted alone, the CPU default) and loop="device" (one fori_loop)
  give the same iterates; inside jit PGD compiles its loop whatever `loop` says."""
  rng = np.random.default_rng(4)
  x = rng.uniform(0, 1, size=(16, 4)).astype(np.float32)
  y = rng.integers(0, 3, size=16).astype(np.int32)
  kw = dict(epsilon=0.2, step_size=0.03, num_steps=7, bounds=(0.0, 1.0), norm=norm,
            random_start=random_start, targeted=targeted)
  host = pgd(linear, jax.random.key(1), x, y, loop="host", **kw)
  device = pgd(linear, jax.random.key(1), x, y, loop="device", **kw)
  np.testing.assert_allclose(host, device, atol=1e-6)
  assert np.abs(np.asarray(host) - x).max() > 0.05
  traced = jax.jit(lambda v: pgd(linear, jax.random.key(1), v, y, loop="host", **kw))(x)
  np.testing.assert_allclose(traced, device, atol=1e-6)
  with pytest.raises(ValueError, match="unknown loop 'fast'"):
    pgd(linear, jax.random.key(1), x, y, loop="fast", **kw)
