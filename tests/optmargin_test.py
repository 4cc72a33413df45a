"""Tests of advbound/attacks/optmargin.py and advbound/attacks/presets.py."""

import jax
import numpy as np
import pytest

from advbound.attacks import ensemble_perturbations, fgsm, optmargin, presets
from advbound.models import as_logits_fn


def test_ensemble_is_orthogonal_with_rms_epsilon():
  v = ensemble_perturbations(jax.random.key(0), (28, 28, 1), epsilon=0.3)
  assert v.shape == (20, 28, 28, 1)
  np.testing.assert_array_equal(v[-1], 0.0)
  flat = v[:-1].reshape(19, -1).astype(np.float64)
  np.testing.assert_allclose(np.sqrt(np.mean(flat ** 2, axis=1)), 0.3, rtol=1e-5)
  gram = flat @ flat.T
  np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-4)
  np.testing.assert_array_equal(v, ensemble_perturbations(jax.random.key(0), (28, 28, 1),
                                                          epsilon=0.3))


def _linear():
  rng = np.random.default_rng(1)
  w = rng.normal(size=(16,)).astype(np.float32)
  W = np.stack([w, -w]) / 2
  x = rng.uniform(0.3, 0.7, size=(6, 16)).astype(np.float32)
  return (lambda z: z @ W.T), x, (x @ w < 0).astype(np.int32)


def test_every_member_fooled_and_deterministic():
  fn, x, y = _linear()
  kw = dict(epsilon=0.05, bounds=(0.0, 1.0), num_models=5, binary_search_steps=6,
            max_iterations=500, learning_rate=0.05, initial_const=0.1)
  a = optmargin(fn, jax.random.key(3), x, y, **kw)
  b = optmargin(fn, jax.random.key(3), x, y, **kw)
  np.testing.assert_array_equal(a.adversarial, b.adversarial)
  assert np.all(a.success)
  for v in ensemble_perturbations(jax.random.key(3), (16,), epsilon=0.05, num_models=5):
    assert np.all(np.argmax(fn(np.clip(np.asarray(a.adversarial) + v, 0, 1)), -1) != y)
  assert np.asarray(a.adversarial).min() >= 0 and np.asarray(a.adversarial).max() <= 1


def test_presets():
  assert presets.settings("optstrong", "mnist")["confidence"] == 40.0
  assert presets.settings("optmargin", "cifar10")["epsilon"] == 8.0
  assert presets.settings("fgsm", "fashion_mnist") == {"epsilon": 0.3}
  with pytest.raises(ValueError, match="unknown attack 'deepfool'"):
    presets.settings("deepfool", "mnist")
  fn, x, y = _linear()
  with pytest.raises(ValueError, match="no setting"):
    presets.run("fgsm", fn, jax.random.key(0), x, y, dataset="mnist", bounds=(0, 1), kappa=3)


def test_imagenet_presets_are_appendix_d_and_the_released_code():
  # Appendix D: OPTMARGIN and FGSM epsilon 8/255 on pixels in [0, 1]; CW as the released
  # ImageNet code (imagenet/attack_v2.py): 4 x 1,000 Adam steps at lr 1e-3 from c0 0.1
  cw = dict(binary_search_steps=4, max_iterations=1000, learning_rate=1e-3, initial_const=0.1)
  assert presets.settings("fgsm", "imagenet") == {"epsilon": 8 / 255}
  assert presets.settings("optbrittle", "imagenet") == cw
  assert presets.settings("optmargin", "imagenet") == {**cw, "epsilon": 8 / 255}
  assert presets.settings("optstrong", "imagenet") == {**cw, "confidence": 40.0}
  # the released ImageNet ensemble attack has the plain L2 term: no 1/255^2 weight
  assert presets.settings("optmargin_released", "imagenet") == presets.settings(
      "optmargin", "imagenet")
  assert presets.settings("optmargin_released", "mnist")["distortion_weight"] == 1 / 255**2


def test_imagenet_fgsm_moves_every_pixel_by_8_of_255():
  """On an affine classifier the gradient's sign is the weight's: FGSM with the ImageNet preset
  moves each pixel (inside [0.3, 0.7], so never clipped) by exactly 8/255 against the true
  class."""
  fn, x, y = _linear()
  adv = fgsm(fn, x, y, bounds=(0.0, 1.0), **presets.settings("fgsm", "imagenet"))
  w = 2 * np.asarray(fn(np.eye(16, dtype=np.float32)))[:, 0]  # logit 0 - logit 1 = x @ w
  away = np.where(y == 0, -1.0, 1.0)[:, None] * np.sign(w)[None]  # lowers the true logit
  np.testing.assert_allclose(np.asarray(adv) - x, 8 / 255 * away, rtol=1e-4)


@pytest.mark.xdist_group(name="quickstart")
@pytest.mark.parametrize("name", ["optbrittle", "optmargin"])
def test_full_success_on_quickstart_natural(quickstart_natural, name):
  model, _, test = quickstart_natural
  fn = as_logits_fn(model)
  x, y = test.images[:4], test.labels[:4]
  r = presets.run(name, fn, jax.random.key(0), x, y, dataset="mnist", bounds=(0.0, 1.0),
                  binary_search_steps=3, max_iterations=50)
  assert np.all(np.asarray(r.success))
  adv = np.asarray(r.adversarial)
  assert adv.min() >= 0.0 and adv.max() <= 1.0
  assert np.all(np.argmax(np.asarray(fn(adv)), -1) != y)
