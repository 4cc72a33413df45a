"""advbound.analysis.transforms: the blur against scipy.ndimage.gaussian_filter, the other
transformations' closed forms, and the destruction rate's extremes and counting."""

import jax
import numpy as np
import pytest
from scipy import ndimage

from advbound.analysis import transforms


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.3])
def test_blur_matches_scipy(sigma):
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 255, size=(3, 17, 13, 3)).astype(np.float32)
  ours = np.asarray(transforms.blur(x, sigma, bounds=(0.0, 255.0)))
  ref = np.stack([np.stack([ndimage.gaussian_filter(img[..., c].astype(np.float64), sigma)
                            for c in range(3)], -1) for img in x])
  np.testing.assert_allclose(ours, ref, atol=1e-3)
  np.testing.assert_array_equal(transforms.blur(x, 0.0, bounds=(0.0, 255.0)), x)


def test_brightness_contrast_noise():
  x = np.array([[[[0.0], [100.0], [250.0]]]], np.float32)  # [1, 1, 3, 1]
  np.testing.assert_array_equal(transforms.brightness(x, 10, bounds=(0, 255)).ravel(),
                                [10, 110, 255])
  np.testing.assert_array_equal(transforms.contrast(x, 0.5, bounds=(0, 255)).ravel(),
                                [0, 50, 125])
  np.testing.assert_allclose(transforms.contrast(x, 1.2, bounds=(0, 255)).ravel(),
                             [0, 120, 255], rtol=1e-6)
  big = np.full((4, 32, 32, 3), 127.5, np.float32)
  n1 = np.asarray(transforms.noise(big, 6.0, jax.random.key(1), bounds=(0, 255)))
  assert np.std(n1 - big) == pytest.approx(6.0, rel=0.03)
  np.testing.assert_array_equal(n1, transforms.noise(big, 6.0, jax.random.key(1),
                                                     bounds=(0, 255)))
  with pytest.raises(ValueError, match="needs a jax.random key"):
    transforms.apply("noise", big, 6.0, bounds=(0, 255))
  with pytest.raises(ValueError, match="'jpeg'"):
    transforms.apply("jpeg", big, 6.0, bounds=(0, 255))


def _linear(W, z):
  return z.reshape(z.shape[0], -1) @ W.T


def test_destruction_rate_extremes_and_counts():
  rng = np.random.default_rng(3)
  W = rng.normal(size=(3, 8)).astype(np.float32)
  fn = jax.tree_util.Partial(_linear, W)
  x = rng.uniform(0, 1, size=(300, 8)).astype(np.float32)
  y = np.argmax(x @ W.T, 1)
  y[:20] = (y[:20] + 1) % 3  # some inputs misclassified from the start
  adv = np.clip(x + rng.normal(0, 0.3, size=x.shape), 0, 1).astype(np.float32)
  identity = transforms.destruction_rate(fn, x, adv, y, adv)
  assert identity["rate"] == 0.0 and identity["destroyed"] == 0
  clean = transforms.destruction_rate(fn, x, adv, y, x)
  effective = (np.argmax(x @ W.T, 1) == y) & (np.argmax(adv @ W.T, 1) != y)
  assert clean["effective"] == int(effective.sum()) > 0 and clean["rate"] == 1.0
  half = np.where(np.arange(300)[:, None] % 2 == 0, x, adv)
  r = transforms.destruction_rate(fn, x, adv, y, half)
  assert r["destroyed"] == int((effective & (np.arange(300) % 2 == 0)).sum())
  none = transforms.destruction_rate(fn, x, x, y, x)
  assert none == dict(rate=None, destroyed=0, effective=0)
