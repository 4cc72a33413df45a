"""Tests of advbound/attacks/eot.py: radius 0 is BIM exactly; through the cube's noise the
attack beats a region classifier that the point-minimal example does not; budget, bounds,
determinism and bad arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advbound import region
from advbound.attacks import eot_pgd, pgd


def _linear(w, b):
  w, b = jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)
  return lambda z: z.reshape(z.shape[0], -1) @ w + b


def test_radius_zero_is_bim_exactly():
  rng = np.random.default_rng(0)
  w, b = rng.normal(size=(12, 5)), rng.normal(size=5)
  fn = lambda z: jnp.tanh(_linear(w, b)(z)) * 4
  x = rng.uniform(0, 1, (7, 3, 4)).astype(np.float32)
  y = rng.integers(0, 5, 7).astype(np.int32)
  for targeted, eps, steps in ((False, 0.2, 9), (True, 0.8, 40)):
    ours = eot_pgd(fn, jax.random.key(0), x, y, epsilon=eps, step_size=0.03, num_steps=steps,
                   radius=0.0, num_samples=1, bounds=(0.0, 1.0), targeted=targeted,
                   vote_samples=1, batch_size=3)
    bim = pgd(fn, jax.random.key(1), x, y, epsilon=eps, step_size=0.03, num_steps=steps,
              bounds=(0.0, 1.0), random_start=False, targeted=targeted)
    label = np.argmax(np.asarray(fn(np.asarray(bim))), -1)
    ok = label == y if targeted else label != y
    assert ok.any()
    np.testing.assert_array_equal(np.asarray(ours.success), ok)
    # AttackResult's convention: the example where the attack succeeded, the input elsewhere
    expected = np.where(ok[:, None, None], np.asarray(bim), x)
    np.testing.assert_allclose(np.asarray(ours.adversarial), expected, atol=1e-6)


def test_beats_region_classification_where_the_minimal_example_does_not():
  # two classes split at z0 = 0.5 in [0, 1]^2; x at z0 = 0.3; region radius 0.3
  fn = _linear([[-1.0, 1.0], [0.0, 0.0]], [0.5, -0.5])
  x = np.array([[0.3, 0.5]], np.float32)
  y = np.array([0], np.int32)
  key = jax.random.key(0)
  minimal = np.array([[0.501, 0.5]], np.float32)  # the point classifier's nearest example
  votes = np.asarray(region.classify(fn, key, minimal, radius=0.3, num_samples=2000,
                                     bounds=(0.0, 1.0))[1])
  assert votes[0, 0] > 0.4 * 2000 and votes[0, 1] < 0.6 * 2000  # a near coin flip
  r = eot_pgd(fn, key, x, y, epsilon=0.45, step_size=0.05, num_steps=20, radius=0.3,
              num_samples=16, bounds=(0.0, 1.0))
  adv = np.asarray(r.adversarial)
  assert bool(np.asarray(r.success)[0])
  assert adv[0, 0] > 0.7  # pushed far past the boundary, where most of the cube is class 1
  assert np.max(np.abs(adv - x)) <= 0.45 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
  again = eot_pgd(fn, key, x, y, epsilon=0.45, step_size=0.05, num_steps=20, radius=0.3,
                  num_samples=16, bounds=(0.0, 1.0))
  np.testing.assert_array_equal(np.asarray(again.adversarial), adv)  # same key, same attack


def test_bad_arguments_are_named():
  fn = _linear(np.eye(2), np.zeros(2))
  x, y = np.full((1, 2), 0.5, np.float32), np.zeros(1, np.int32)
  kw = dict(epsilon=0.1, step_size=0.01, num_steps=2, radius=0.1, num_samples=2,
            bounds=(0.0, 1.0))
  with pytest.raises(ValueError, match="num_samples"):
    eot_pgd(fn, jax.random.key(0), x, y, **{**kw, "num_samples": 0})
  with pytest.raises(ValueError, match="radius"):
    eot_pgd(fn, jax.random.key(0), x, y, **{**kw, "radius": -0.1})
  with pytest.raises(ValueError, match="outside bounds"):
    eot_pgd(fn, jax.random.key(0), x + 1, y, **kw)
