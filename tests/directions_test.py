"""Tests of advbound/directions.py."""

import jax
import numpy as np
import pytest

from advbound.directions import random_orthogonal


@pytest.mark.parametrize("num,shape", [(10, (4, 4, 1)), (16, (4, 4, 1)), (30, (8, 8, 3))])
def test_orthogonal_with_rms_one(num, shape):
  d = np.asarray(random_orthogonal(jax.random.key(0), num, shape), np.float64)
  assert d.shape == (num,) + shape
  flat = d.reshape(num, -1)
  dim = flat.shape[1]
  np.testing.assert_allclose(flat @ flat.T, dim * np.eye(num), atol=1e-5 * dim)
  np.testing.assert_allclose(np.sqrt(np.mean(flat ** 2, axis=1)), 1.0, atol=1e-5)


def test_both_signs_and_determinism():
  a = np.asarray(random_orthogonal(jax.random.key(1), 5, (3, 3), both_signs=True))
  b = np.asarray(random_orthogonal(jax.random.key(1), 5, (3, 3), both_signs=True))
  c = np.asarray(random_orthogonal(jax.random.key(2), 5, (3, 3)))
  assert a.shape == (10, 3, 3)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(a[5:], -a[:5])
  assert not np.allclose(a[:5], c)


@pytest.mark.parametrize("num", [17, 0, -1, 2.5, True])
def test_bad_num(num):
  with pytest.raises(ValueError, match="num|orthogonal directions"):
    random_orthogonal(jax.random.key(0), num, (4, 4))


def test_cholesky_route_equals_householder():
  """QR with a positive diagonal in R is unique: both routes return the same directions."""
  key = jax.random.key(3)
  a = np.asarray(random_orthogonal(key, 40, (16, 16, 3), route="householder"))
  b = np.asarray(random_orthogonal(key, 40, (16, 16, 3), route="cholesky"))
  np.testing.assert_allclose(a, b, atol=1e-4)
  flat = b.reshape(40, -1).astype(np.float64)
  np.testing.assert_allclose(flat @ flat.T, flat.shape[1] * np.eye(40), atol=1e-5 * flat.shape[1])


def test_bad_route():
  with pytest.raises(ValueError, match="route"):
    random_orthogonal(jax.random.key(0), 4, (4, 4), route="svd")
  with pytest.raises(ValueError, match="D >= 4"):
    random_orthogonal(jax.random.key(0), 8, (4, 4), route="cholesky")
