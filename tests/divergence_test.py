"""advbound.analysis.divergence: the KDE is scipy's with Scott's rule; KL(p || p) = 0, the closed
form of two Gaussians (with the KDE's variance inflation), and the direction of the divergence."""

import numpy as np
import pytest
from scipy import stats

from advbound.analysis import divergence


def test_kde_bandwidth_is_scotts_rule():
  rng = np.random.default_rng(0)
  pts = rng.normal(size=(500, 2)) * [1.0, 3.0]
  k = divergence.kde(pts)
  ref = stats.gaussian_kde(pts.T)
  np.testing.assert_allclose(k.covariance, ref.covariance)
  factor = 500 ** (-1 / 6)  # Scott: n^(-1 / (d + 4))
  np.testing.assert_allclose(k.covariance, np.cov(pts.T) * factor ** 2, rtol=1e-10)


def test_kl_of_a_set_with_itself_is_zero():
  pts = np.random.default_rng(1).normal(size=(300, 2))
  assert divergence.kl_divergence(pts, pts) == pytest.approx(0.0, abs=1e-9)


def test_kl_matches_monte_carlo_and_two_gaussians():
  """N(0, I) vs N(mu, I) samples. The grid integral equals a Monte Carlo estimate of the same
  KL between the two KDEs (samples drawn from P's KDE). Against the closed form of the
  Gaussians, each KDE is close to N(mean, (1 + h^2) I), h^2 = n^(-1/3), so KL is near
  |mu|^2 / (2 (1 + h^2)); two KDEs of finite samples sit above it (their fine structure adds
  divergence), here by about 10%."""
  rng = np.random.default_rng(2)
  n, mu = 4000, np.array([1.0, 0.5])
  a = rng.normal(size=(n, 2))
  b = rng.normal(size=(n, 2)) + mu
  grid = divergence.kl_divergence(a, b, padding=0.2)
  p, q = divergence.kde(a), divergence.kde(b)
  s = p.resample(20000, seed=5)
  assert grid == pytest.approx(np.mean(np.log(p(s)) - np.log(q(s))), rel=0.03)
  expected = mu @ mu / (2 * (1 + n ** (-1 / 3)))
  assert expected < grid < 1.15 * expected


def test_direction_matters():
  """A narrow P inside a wide Q costs less than a wide P against a narrow Q."""
  rng = np.random.default_rng(3)
  narrow = rng.normal(size=(1500, 2)) * 0.5
  wide = rng.normal(size=(1500, 2)) * 2.0
  forward = divergence.kl_divergence(narrow, wide)
  backward = divergence.kl_divergence(wide, narrow)
  assert 0 < forward < backward
  with pytest.raises(ValueError, match="2-D"):
    divergence.kl_divergence(narrow[:, :1], wide[:, :1])
