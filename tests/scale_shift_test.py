"""The blind-spot transformation: identity at (1, 0), the paper's formula on [-0.5, 0.5] written
out for [0, 1] and [0, 255] data and values by hand, range kept over the paper's grids, bad
settings named."""

import numpy as np
import pytest

from advbound.analysis import scale_shift


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.0, 255.0)])
def test_equals_the_papers_formula_and_identity(bounds):
  """x' = alpha x + beta on the paper's [-0.5, 0.5] scale, written out here for data on
  [low, high]: u = (x - low) / (high - low) - 0.5, x' = (alpha u + beta + 0.5) (high - low) + low
  (not through the module's own scale conversion)."""
  low, high = bounds
  rng = np.random.default_rng(0)
  x = rng.uniform(low, high, size=(5, 4, 4, 1)).astype(np.float32)
  np.testing.assert_allclose(scale_shift.scale_shift(x, 1.0, 0.0, bounds=bounds), x,
                             rtol=1e-6, atol=1e-6 * high)
  for alpha, beta in scale_shift.grid(scale_shift.MNIST_ALPHAS):
    out = np.asarray(scale_shift.scale_shift(x, alpha, beta, bounds=bounds))
    u = (x.astype(np.float64) - low) / (high - low) - 0.5
    expected = (alpha * u + beta + 0.5) * (high - low) + low
    np.testing.assert_allclose(out, expected, atol=2e-6 * (high - low))
    assert out.min() >= low and out.max() <= high
  # by hand on [0, 255]: mid-grey stays mid-grey at beta 0; black at (0.8, 0.1) is
  # (0.8 * -0.5 + 0.1 + 0.5) * 255 = 51
  if bounds == (0.0, 255.0):
    grey_black = np.array([[127.5], [0.0]], np.float32)
    np.testing.assert_allclose(scale_shift.scale_shift(grey_black, 0.8, 0.0, bounds=bounds)[0],
                               [127.5], atol=1e-4)
    np.testing.assert_allclose(scale_shift.scale_shift(grey_black, 0.8, 0.1, bounds=bounds)[1],
                               [51.0], atol=1e-4)


def test_extremes_stay_in_range_and_grid():
  x = np.array([[0.0], [1.0]], np.float32)
  out = np.asarray(scale_shift.scale_shift(x, 0.7, 0.15, bounds=(0.0, 1.0)))
  np.testing.assert_allclose(out[:, 0], [0.3, 1.0], atol=1e-6)  # grey background, full white
  assert scale_shift.grid((1.0, 0.9)) == ((1.0, 0.0), (0.9, 0.0), (0.9, pytest.approx(0.05)))
  with pytest.raises(ValueError, match="beta"):
    scale_shift.scale_shift(x, 0.9, 0.1, bounds=(0.0, 1.0))
  with pytest.raises(ValueError, match="alpha"):
    scale_shift.scale_shift(x, 1.2, 0.0, bounds=(0.0, 1.0))
