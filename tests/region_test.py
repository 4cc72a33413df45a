"""Tests of advbound/region.py: analytic cube masses, a radius known by construction,
Clopper-Pearson against scipy, certified radii against the true distance, determinism, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from advbound import region


def _threshold_1d(t):
  """Class 1 iff z[0] > t."""
  return lambda z: jnp.stack([t - z[:, 0], z[:, 0] - t], -1)


def test_vote_frequency_matches_cube_mass_with_clipping():
  # x = 0.1, r = 0.3: samples uniform on [-0.2, 0.4], clipped to [0, 1] (mass below 0 lands on
  # 0, class 0). Class 1 iff z > 0.05: probability (0.4 - 0.05) / 0.6.
  fn = _threshold_1d(0.05)
  n = 20000
  _, counts = region.classify(fn, jax.random.key(0), np.array([[0.1]], np.float32), radius=0.3,
                              num_samples=n, bounds=(0.0, 1.0))
  p = 0.35 / 0.6
  freq = float(counts[0, 1]) / n
  assert int(counts.sum()) == n
  assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n), (freq, p)


def test_vote_frequency_matches_cube_mass_2d():
  # class 1 iff z0 + z1 > c around the origin with r = 1: P = (1 - c/2)^2 / 2 for 0 <= c <= 2
  c = 0.6
  fn = lambda z: jnp.stack([c - z[:, 0] - z[:, 1], z[:, 0] + z[:, 1] - c], -1)
  n = 20000
  _, counts = region.classify(fn, jax.random.key(1), np.zeros((1, 2), np.float32), radius=1.0,
                              num_samples=n, bounds=None, batch_size=3000)
  p = (1 - c / 2) ** 2 / 2
  assert abs(float(counts[0, 1]) / n - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_same_key_same_votes_whatever_the_chunking():
  fn = _threshold_1d(0.5)
  x = np.random.default_rng(0).uniform(0, 1, size=(7, 1)).astype(np.float32)
  kw = dict(radius=0.3, num_samples=50, bounds=(0.0, 1.0))
  a = region.classify(fn, jax.random.key(3), x, batch_size=64, **kw)[1]
  b = region.classify(fn, jax.random.key(3), x, batch_size=7, **kw)[1]    # sample blocks
  c = region.classify(fn, jax.random.key(4), x, batch_size=64, **kw)[1]
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_ties_go_to_the_lowest_class():
  fn = lambda z: jnp.zeros((len(z), 3))  # every sample ties all three classes -> class 0 votes
  labels, counts = region.classify(fn, jax.random.key(0), np.zeros((2, 1), np.float32),
                                   radius=0.1, num_samples=10, bounds=None)
  np.testing.assert_array_equal(np.asarray(labels), [0, 0])
  fn2 = lambda z: jnp.stack([z[:, 0] < 0, z[:, 0] >= 0], -1).astype(jnp.float32)
  # exact tie of votes: construct counts 5/5 by evaluating many keys until one ties
  for seed in range(200):
    labels, counts = region.classify(fn2, jax.random.key(seed), np.zeros((1, 1), np.float32),
                                     radius=1.0, num_samples=10, bounds=None)
    if int(counts[0, 0]) == int(counts[0, 1]):
      assert int(labels[0]) == 0
      break
  else:
    pytest.fail("no tie found")


def test_learn_radius_known_by_construction():
  """Class 0 on the band [0.3, 0.7], class 1 elsewhere; validation points at 0.5. The cube of
  half-width r keeps a majority in the band while 0.4 / (2r) > 1/2, i.e. r < 0.4. With steps of
  0.05 from 0.025 the last radius that holds is 0.375 (band fraction 0.533; at 0.425, 0.471)."""
  fn = lambda z: jnp.stack([0.2 - jnp.abs(z[:, 0] - 0.5), jnp.abs(z[:, 0] - 0.5) - 0.2], -1)
  x = np.full((4, 1), 0.5, np.float32)
  y = np.zeros(4, np.int32)
  r, history, point = region.learn_radius(fn, jax.random.key(0), x, y, step=0.05,
                                          bounds=(-1.0, 2.0), num_samples=4000, initial=0.025,
                                          return_history=True)
  assert point == 1.0
  assert r == pytest.approx(0.375)
  assert all(acc >= point for rad, acc in history if rad <= r + 1e-9)
  assert history[-1][1] < point


def test_learn_radius_tolerance_lets_accuracy_fall_that_far():
  """A noisy linear model: a tolerance can only let the search go further, every radius it
  keeps is within the tolerance of point accuracy, and tolerance 1 runs to max_radius."""
  fn = lambda z: jnp.stack([0.5 - z.reshape(len(z), -1).mean(1),
                            z.reshape(len(z), -1).mean(1) - 0.5], -1)
  rng = np.random.default_rng(4)
  x = rng.uniform(0, 1, size=(60, 4)).astype(np.float32)
  y = (x.mean(1) > 0.5).astype(np.int32)
  kw = dict(step=0.05, bounds=(0.0, 1.0), num_samples=200)
  strict = region.learn_radius(fn, jax.random.key(0), x, y, **kw)
  assert region.learn_radius(fn, jax.random.key(0), x, y, tolerance=0.0, **kw) == strict
  loose, history, point = region.learn_radius(fn, jax.random.key(0), x, y, tolerance=0.1,
                                              return_history=True, **kw)
  assert loose > strict
  assert all(acc >= point - 0.1 for rad, acc in history if rad <= loose + 1e-9)
  assert history[-1][0] == pytest.approx(1.0) or history[-1][1] < point - 0.1
  assert region.learn_radius(fn, jax.random.key(0), x, y, tolerance=1.0, max_radius=0.35,
                             **kw) == pytest.approx(0.35)
  with pytest.raises(ValueError, match="tolerance"):
    region.learn_radius(fn, jax.random.key(0), x, y, tolerance=-0.1, **kw)


def test_learn_radius_never_returns_a_failing_radius():
  fn = lambda z: jnp.stack([0.5 - z.reshape(len(z), -1).mean(1),
                            z.reshape(len(z), -1).mean(1) - 0.5], -1)
  rng = np.random.default_rng(1)
  x = rng.uniform(0, 1, size=(40, 4)).astype(np.float32)
  y = (x.mean(1) > 0.5).astype(np.int32)
  y[:3] = 1 - y[:3]  # some point errors, so point accuracy is below 1
  key = jax.random.key(2)
  r = region.learn_radius(fn, key, x, y, step=0.05, bounds=(0.0, 1.0), num_samples=100)
  labels, _ = region.classify(fn, key, x, radius=r, num_samples=100, bounds=(0.0, 1.0))
  point = np.mean(np.argmax(np.asarray(fn(x)), 1) == y)
  assert np.mean(np.asarray(labels) == y) >= point


def test_clopper_pearson_matches_scipy():
  alpha = 0.001
  for k, n in [(0, 10), (1, 10), (57, 100), (100, 100), (9990, 10000)]:
    ours = float(region.clopper_pearson_lower(k, n, alpha))
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha,
                                              method="exact").low
    assert ours == pytest.approx(ref, abs=1e-12)


def test_certify_abstains_on_balanced_classes():
  fn = lambda z: jnp.stack([z[:, 0], -z[:, 0]], -1)  # 50/50 under symmetric noise at 0
  labels, radii = region.certify(fn, jax.random.key(0), np.zeros((3, 1), np.float32),
                                 noise="gaussian", scale=0.5, num_select=100, num_estimate=1000,
                                 alpha=0.001, bounds=None)
  np.testing.assert_array_equal(np.asarray(labels), [-1, -1, -1])
  np.testing.assert_array_equal(np.asarray(radii), 0.0)


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_certified_radius_never_exceeds_the_true_distance(noise):
  """Linear two-class model: the L2 distance to the boundary is |w.x + b| / |w|, and the L1
  distance is |w.x + b| / max|w_i|; a certificate beyond it would be wrong."""
  rng = np.random.default_rng(3)
  w = rng.normal(size=(5,)).astype(np.float32)
  b = np.float32(0.1)
  fn = lambda z: jnp.stack([-(z @ w + b), z @ w + b], -1)
  x = rng.normal(size=(30, 5)).astype(np.float32)
  labels, radii = region.certify(fn, jax.random.key(4), x, noise=noise, scale=0.5,
                                 num_select=50, num_estimate=2000, alpha=0.001, bounds=None)
  labels, radii = np.asarray(labels), np.asarray(radii)
  margin = np.abs(x @ w + b)
  true = margin / (np.linalg.norm(w) if noise == "gaussian" else np.abs(w).max())
  ok = labels >= 0
  assert ok.sum() > 10
  np.testing.assert_array_equal(labels[ok], (x @ w + b > 0)[ok].astype(int))
  assert np.all(radii[ok] <= true[ok] + 1e-6)
  if noise == "gaussian":  # tight for a linear model: close to the true distance when p ~ 1
    assert np.any(radii[ok] > 0.5 * true[ok])


def test_bad_arguments():
  fn = _threshold_1d(0.5)
  x = np.zeros((2, 1), np.float32)
  with pytest.raises(ValueError, match="radius"):
    region.classify(fn, jax.random.key(0), x, radius=-0.1, num_samples=10, bounds=(0.0, 1.0))
  with pytest.raises(ValueError, match="num_samples"):
    region.classify(fn, jax.random.key(0), x, radius=0.1, num_samples=0, bounds=(0.0, 1.0))
  with pytest.raises(ValueError, match="alpha"):
    region.certify(fn, jax.random.key(0), x, noise="gaussian", scale=0.1, num_select=10,
                   num_estimate=10, alpha=1.5, bounds=None)
  with pytest.raises(ValueError, match="noise"):
    region.certify(fn, jax.random.key(0), x, noise="laplace", scale=0.1, num_select=10,
                   num_estimate=10, alpha=0.01, bounds=None)
  with pytest.raises(ValueError, match="x"):
    region.classify(fn, jax.random.key(0), x + 2, radius=0.1, num_samples=10, bounds=(0.0, 1.0))
