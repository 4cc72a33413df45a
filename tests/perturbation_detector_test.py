"""advbound.analysis.perturbation_detector: a MetzenDetector learns a perturbation it can see, not
one that carries no signal, deterministically, and bad input is refused."""

import jax
import numpy as np
import pytest

from advbound.analysis import perturbation_detector as pd


def _images(seed, n=256):
  return np.random.default_rng(seed).uniform(0, 150, size=(n, 8, 8, 1)).astype(np.float32)


def test_detects_a_visible_pattern_and_not_a_relabelled_copy():
  clean = _images(0)
  pattern = np.zeros((8, 8, 1), np.float32)
  pattern[::2, ::2] = 80.0  # a checker-board of +80 on the 0-255 scale
  adversarial = np.clip(_images(1) + pattern, 0, 255)
  fn = pd.train(jax.random.key(0), clean, adversarial, bounds=(0.0, 255.0), steps=60,
                batch_size=16, learning_rate=3e-3)
  held_clean, held_adv = _images(2, 128), np.clip(_images(3, 128) + pattern, 0, 255)
  r = pd.detectability(fn, held_clean, held_adv)
  assert r["accuracy"] >= 0.9, r
  assert r["accuracy"] == pytest.approx((r["true_negative_rate"] + r["true_positive_rate"]) / 2)
  # "adversarial" inputs drawn like the clean ones: nothing to learn, chance on held-out data
  same = pd.train(jax.random.key(0), clean, _images(4), bounds=(0.0, 255.0), steps=60,
                  batch_size=16, learning_rate=3e-3)
  assert 0.3 <= pd.detectability(same, held_clean, _images(5, 128))["accuracy"] <= 0.7
  again = pd.train(jax.random.key(0), clean, adversarial, bounds=(0.0, 255.0), steps=60,
                   batch_size=16, learning_rate=3e-3)
  np.testing.assert_array_equal(np.asarray(fn(held_adv)), np.asarray(again(held_adv)))


def test_bad_input():
  with pytest.raises(ValueError, match="one shape"):
    pd.train(jax.random.key(0), _images(0), _images(1)[:, :4], bounds=(0.0, 255.0))
  with pytest.raises(ValueError, match="at least one"):
    pd.train(jax.random.key(0), _images(0), _images(1)[:0], bounds=(0.0, 255.0))
