"""The blind-spot transformation: identity at (1, 0), the paper's formula on [-0.5, 0.5] for
[0, 1] and [0, 255] data, range kept over the paper's grids, bad settings named."""

import numpy as np
import pytest

from advbound.attacks import blind_spot


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.0, 255.0)])
def test_equals_the_papers_formula_and_identity(bounds):
  rng = np.random.default_rng(0)
  x = rng.uniform(*bounds, size=(5, 4, 4, 1)).astype(np.float32)
  np.testing.assert_allclose(blind_spot.scale_shift(x, 1.0, 0.0, bounds=bounds), x,
                             rtol=1e-6, atol=1e-6 * bounds[1])
  for alpha, beta in blind_spot.grid(blind_spot.MNIST_ALPHAS):
    out = np.asarray(blind_spot.scale_shift(x, alpha, beta, bounds=bounds))
    paper = alpha * blind_spot.paper_scale(x, bounds=bounds) + beta  # x' on [-0.5, 0.5]
    np.testing.assert_allclose(blind_spot.paper_scale(out, bounds=bounds), paper, atol=1e-6)
    assert out.min() >= bounds[0] and out.max() <= bounds[1]


def test_extremes_stay_in_range_and_grid():
  x = np.array([[0.0], [1.0]], np.float32)
  out = np.asarray(blind_spot.scale_shift(x, 0.7, 0.15, bounds=(0.0, 1.0)))
  np.testing.assert_allclose(out[:, 0], [0.3, 1.0], atol=1e-6)  # grey background, full white
  assert blind_spot.grid((1.0, 0.9)) == ((1.0, 0.0), (0.9, 0.0), (0.9, pytest.approx(0.05)))
  with pytest.raises(ValueError, match="beta"):
    blind_spot.scale_shift(x, 0.9, 0.1, bounds=(0.0, 1.0))
  with pytest.raises(ValueError, match="alpha"):
    blind_spot.scale_shift(x, 1.2, 0.0, bounds=(0.0, 1.0))
