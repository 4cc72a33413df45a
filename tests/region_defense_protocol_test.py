"""Tests of the region-defense protocol (advbound.studies.region_defense.protocol)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advbound import region
from advbound.studies.region_defense import protocol as region_defense


def test_choose_images_only_among_images_every_classifier_gets_right():
  labels = np.arange(20) % 10
  a, b = labels.copy(), labels.copy()
  a[[1, 2, 3]] = 9 - labels[[1, 2, 3]]
  b[[3, 4]] = (labels[[3, 4]] + 1) % 10
  chosen = region_defense.choose_images(7, labels, [a, b], 15)
  assert len(set(chosen)) == 15 and not set(chosen) & {1, 2, 3, 4}
  np.testing.assert_array_equal(chosen, region_defense.choose_images(7, labels, [a, b], 15))
  with pytest.raises(ValueError, match="only 16 of 20"):
    region_defense.choose_images(7, labels, [a, b], 17)
  with pytest.raises(ValueError, match="do not match"):
    region_defense.choose_images(7, labels, [a[:5]], 2)


def test_all_targets_pairs_each_image_with_its_other_classes():
  rows, targets = region_defense.all_targets(np.array([3, 0]), 4)
  np.testing.assert_array_equal(rows, [0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(targets, [0, 1, 2, 1, 2, 3])
  rows, targets = region_defense.all_targets(np.arange(100) % 10, 10)
  assert len(rows) == 900 and not np.any(targets == (np.arange(100) % 10)[rows])


def test_score_rate_over_all_pairs_noise_over_successes():
  x = np.zeros((4, 2, 2, 3), np.float32)
  adv = x.copy()
  adv[0, 0, 0] = [0.5, 0.5, 0.0]  # 1 pixel, 2 values; L2 sqrt(0.5), L-inf 0.5
  adv[1, :, :, 0] = 0.1  # 4 pixels / values; L2 0.2, L-inf 0.1
  adv[2, 0, 0, 0] = 0.9  # not counted: unsuccessful
  success = np.array([True, True, False, False])
  s = region_defense.score(x, adv, success, "l2")
  assert s["success_rate"] == 0.5 and s["successes"] == 2 and s["attempts"] == 4
  assert s["noise"] == pytest.approx((np.sqrt(0.5) + 0.2) / 2, rel=1e-6)
  assert region_defense.score(x, adv, success, "linf")["noise"] == pytest.approx(0.3)
  assert region_defense.score(x, adv, success, "l0")["noise"] == pytest.approx(3.0)
  assert region_defense.score(x, adv, success, "l0", pixels=True)["noise"] == pytest.approx(2.5)
  assert region_defense.score(x, adv, np.zeros(4, bool), "l2")["noise"] is None
  with pytest.raises(ValueError, match="norm must be"):
    region_defense.score(x, adv, success, "rms")


def test_region_success_rescores_with_the_region_classifier():
  def fn(z):  # class 1 on the band 0.5 < z0 < 0.6 and beyond 0.9; class 0 elsewhere
    s = jnp.maximum(jnp.minimum(z[:, 0] - 0.5, 0.6 - z[:, 0]), z[:, 0] - 0.9)
    return jnp.stack([-s, s], -1)

  # 0.55 fools the point classifier only (the cube [0.25, 0.85] is 1/6 band); 0.95 fools both
  # (7/12 of the cube [0.65, 1.25] lies beyond 0.9, clipped to 1); 0.2 fools neither
  adv = np.array([[0.55], [0.95], [0.2]], np.float32)
  assert list(np.argmax(np.asarray(fn(adv)), -1)) == [1, 1, 0]
  key = jax.random.key(0)
  kw = dict(radius=0.3, num_samples=1000, bounds=(0.0, 1.0))
  ok = region_defense.region_success(fn, key, adv, np.array([1, 1, 1]), targeted=True, **kw)
  labels, _ = region.classify(fn, key, adv, **kw)
  np.testing.assert_array_equal(ok, np.asarray(labels) == 1)
  assert list(ok) == [False, True, False]
  untargeted = region_defense.region_success(fn, key, adv, np.array([0, 0, 0]),
                                             targeted=False, **kw)
  np.testing.assert_array_equal(untargeted, ok)
