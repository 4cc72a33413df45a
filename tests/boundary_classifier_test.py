"""Tests of advbound/analysis/boundary_classifier.py and advbound/models/boundary_net.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from advbound.analysis import boundary_classifier as bc
from advbound.models.boundary_net import BoundaryNet


@pytest.mark.parametrize("m,flat", [(1568, 96 * 16), (1000, 61 * 16)])
def test_shapes_follow_the_number_of_directions(m, flat):
  net = BoundaryNet(m, rngs=nnx.Rngs(0))
  assert net.fc1.in_features == flat + 3
  out = net(jnp.zeros((5, m)), jnp.zeros((5, 3)))
  assert out.shape == (5, 2)
  with pytest.raises(ValueError, match="num_directions"):
    BoundaryNet(30, rngs=nnx.Rngs(0))


def test_features_sort_replace_none_and_normalize():
  inf = np.inf
  f = bc.features(np.array([[30.0, inf, 2.0, 16.0]]), np.array([[1, -1, 1, 2]]), [True],
                      num_classes=3, none_value=255.0, offset=16.0, scale=127.5)
  np.testing.assert_allclose(f.distances, [[(2 - 16) / 127.5, 0.0, (30 - 16) / 127.5,
                                            (255 - 16) / 127.5]], rtol=1e-6)
  np.testing.assert_allclose(f.purity, [[2 / 3, 1.0, 1.0]])


def test_rates_and_worst_case_by_hand():
  pred_b = np.array([0, 1, 0, 0, 1])           # the 2nd and 5th benign flagged
  valid_b = np.array([1, 1, 1, 1, 0], bool)     # the 5th does not count: FP = 1/4
  pred_a = np.array([1, 0, 1, 1, 0, 0])
  valid_a = np.array([1, 1, 1, 1, 1, 0], bool)  # FN = 2/5 (the 6th does not count)
  fp, fn = bc.rates(pred_b, valid_b, pred_a, valid_a)
  assert fp == pytest.approx(0.25) and fn == pytest.approx(0.4)
  assert bc.worst_case_accuracy(fp, fn) == pytest.approx(0.6)   # FN higher: all adversarial
  assert bc.worst_case_accuracy(0.3, 0.1) == pytest.approx(0.7)  # FP higher: all benign
  assert bc.rates(pred_b, np.zeros(5, bool), pred_a, valid_a)[0] is None
  assert bc.worst_case_accuracy(None, 0.1) is None


def _separable(n, m, seed, shift):
  rng = np.random.default_rng(seed)
  d = np.sort(rng.uniform(0.2, 0.5, size=(n, m)) - shift, axis=1).astype(np.float32)
  return d, np.zeros((n, m), np.int32)


def test_learns_a_separable_problem_and_masks_invalid_inputs():
  """Benign distances ~U(0.2, 0.5), adversarial ~U(0.0, 0.3): easy to separate. The masked-out
  inputs carry the opposite pattern; if masking failed they would poison training."""
  m = 64
  # 100 valid inputs of each kind, and 300 invalid ones that look like the other kind: if the
  # mask were ignored, most adversarial-looking inputs would be labelled benign and vice versa
  db = np.concatenate([_separable(100, m, 0, 0.0)[0], _separable(300, m, 1, 0.2)[0]])
  da = np.concatenate([_separable(100, m, 2, 0.2)[0], _separable(300, m, 3, 0.0)[0]])
  ab = aa = np.zeros((400, m), np.int32)
  valid_b = valid_a = np.arange(400) < 100
  fb = bc.features(db, ab, valid_b, num_classes=10, none_value=1.0)
  fa = bc.features(da, aa, valid_a, num_classes=10, none_value=1.0)
  model = bc.train(jax.random.key(0), fb, fa, steps=300, batch_size=32)
  tb, _ = _separable(100, m, 5, 0.0)
  ta, _ = _separable(100, m, 6, 0.2)
  ftb = bc.features(tb, np.zeros_like(tb, np.int32), np.ones(100, bool), num_classes=10,
                        none_value=1.0)
  fta = bc.features(ta, np.zeros_like(ta, np.int32), np.ones(100, bool), num_classes=10,
                        none_value=1.0)
  fp, fn = bc.rates(bc.predict(model, ftb), ftb.valid, bc.predict(model, fta),
                        fta.valid)
  assert fp <= 0.05 and fn <= 0.05, (fp, fn)
  # same key, same model
  again = bc.train(jax.random.key(0), fb, fa, steps=300, batch_size=32)
  np.testing.assert_array_equal(bc.predict(model, ftb), bc.predict(again, ftb))


def test_no_valid_inputs_is_an_error():
  d, a = _separable(4, 64, 0, 0.0)
  f = bc.features(d, a, np.zeros(4, bool), num_classes=10, none_value=1.0)
  g = bc.features(d, a, np.ones(4, bool), num_classes=10, none_value=1.0)
  with pytest.raises(ValueError, match="benign"):
    bc.train(jax.random.key(0), f, g, steps=1)
  with pytest.raises(ValueError, match="adversarial"):
    bc.train(jax.random.key(0), g, f, steps=1)
