"""Tests of advbound/metrics.py on hand-computed values."""

import numpy as np

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
