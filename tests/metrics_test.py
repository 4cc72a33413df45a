"""Tests of advbound/metrics.py on hand-computed values."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from advbound import metrics


def test_norms():
  delta = np.array([[[3.0, -4.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.5]]], np.float32)
  np.testing.assert_allclose(metrics.l2(delta), [5.0, 0.5])
  np.testing.assert_allclose(metrics.rms(delta), [2.5, 0.25])  # l2 / sqrt(4)
  np.testing.assert_allclose(metrics.linf(delta), [4.0, 0.5])
  np.testing.assert_allclose(metrics.l0(delta), [2.0, 1.0])
  d = metrics.distortions(np.zeros_like(delta), delta)
  assert sorted(d) == ["l0", "l2", "linf", "rms"]
  np.testing.assert_allclose(d["rms"], [2.5, 0.25])


def test_l0_counts_values_or_pixels():
  delta = np.zeros((2, 2, 2, 3), np.float32)
  delta[0, 0, 0, :] = 0.5  # one pixel, three channels
  delta[0, 1, 1, 2] = -0.1  # a second pixel, one channel
  np.testing.assert_allclose(metrics.l0(delta), [4.0, 0.0])
  np.testing.assert_allclose(metrics.l0(delta, pixels=True), [2.0, 0.0])
  np.testing.assert_allclose(metrics.l0(delta, pixels=True, tol=0.2), [1.0, 0.0])
  with pytest.raises(ValueError, match="pixels=True needs"):
    metrics.l0(delta[:, 0], pixels=True)


class NormsUnderTransformsTest(chex.TestCase):
  """The same hand-computed norms with and without jit, and with the inputs put on the device."""

  @chex.variants(with_jit=True, without_jit=True, with_device=True)
  def test_distortions(self):
    delta = np.array([[[3.0, -4.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.5]]], np.float32)
    d = self.variant(metrics.distortions)(jnp.zeros_like(delta), delta)
    chex.assert_shape(list(d.values()), (2,))
    chex.assert_trees_all_close(d, {"l2": np.array([5.0, 0.5], np.float32),
                                    "rms": np.array([2.5, 0.25], np.float32),
                                    "linf": np.array([4.0, 0.5], np.float32),
                                    "l0": np.array([2.0, 1.0], np.float32)}, atol=1e-6)
