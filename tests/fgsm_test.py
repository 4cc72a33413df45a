"""Tests of advbound/attacks/fgsm.py: hand-computed steps, epsilon search against linear
programs, Foolbox agreement."""

import jax
import numpy as np
import pytest
from scipy import optimize

from advbound.attacks import fgsm, fgsm_epsilon_search
from advbound.attacks.result import AttackResult
from advbound.models import as_logits_fn

W = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)


def linear(x):
  """Class 0 iff x[0] > x[1]; logit gap 2 (x0 - x1)."""
  return x @ W.T


def test_matches_hand_computation():
  x = np.array([[0.6, 0.4], [0.2, 0.9]], np.float32)
  y = np.array([0, 1], np.int32)
  # d CE/dx for class 0 points along (-1, +1); for class 1 along (+1, -1)
  np.testing.assert_allclose(fgsm(linear, x, y, epsilon=0.15, bounds=(0, 1)),
                             [[0.45, 0.55], [0.35, 0.75]], atol=1e-6)
  np.testing.assert_allclose(fgsm(linear, x, y, epsilon=0.15, bounds=(0, 1), targeted=True),
                             [[0.75, 0.25], [0.05, 1.0]], atol=1e-6)  # clipped at 1


def test_epsilon_search_finds_smallest_grid_point():
  # margins x0 - x1: 0.2 needs eps > 0.1; 0.05 needs eps > 0.025; 0.9 is out of reach
  x = np.array([[0.6, 0.4], [0.525, 0.475], [0.95, 0.05]], np.float32)
  y = np.zeros(3, np.int32)
  grid = np.arange(1, 31) * 0.01
  result, eps = fgsm_epsilon_search(linear, x, y, epsilons=grid, bounds=(0, 1),
                                    return_epsilon=True)
  np.testing.assert_allclose(eps, [0.11, 0.03, np.inf], atol=1e-6)
  np.testing.assert_array_equal(result.success, [True, True, False])
  np.testing.assert_allclose(result.adversarial[0], [0.49, 0.51], atol=1e-6)
  np.testing.assert_array_equal(result.adversarial[2], x[2])  # failure: the input back
  assert float(result.distortion["linf"][2]) == 0.0
  # the default return form is the AttackResult alone, the same one
  plain = fgsm_epsilon_search(linear, x, y, epsilons=grid, bounds=(0, 1))
  assert isinstance(plain, AttackResult)
  np.testing.assert_array_equal(plain.adversarial, result.adversarial)
  # chunking does not change the answer
  chunked = fgsm_epsilon_search(linear, x, y, epsilons=grid, bounds=(0, 1), batch_size=2)
  np.testing.assert_array_equal(chunked.adversarial, result.adversarial)
  with pytest.raises(ValueError, match="increasing grid"):
    fgsm_epsilon_search(linear, x, y, epsilons=[0.2, 0.1], bounds=(0, 1))
  with pytest.raises(ValueError, match="batch_size"):
    fgsm_epsilon_search(linear, x, y, epsilons=grid, bounds=(0, 1), batch_size=0)


def min_linf_lp(W, b, x, bounds, *, label=None, target=None, margin=0.0):
  """The smallest L-inf perturbation of each x [N, D] that makes the affine model z = W x + b
  [K, D], [K] classify it as `target` [N] (every other logit at least `margin` below), or, with
  `label` [N], makes some other class exceed the label's logit by `margin` (the minimum over the
  other classes). A linear program in (delta, t): minimize t s.t. |delta_i| <= t, x + delta in
  bounds. Returns float64 [N] (inf where infeasible)."""
  low, high = bounds
  d, k = W.shape[1], W.shape[0]
  cost = np.zeros(d + 1)
  cost[-1] = 1.0
  box = np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]])

  def solve(xi, winner, losers):
    # (W_l - W_w).(x + delta) + b_l - b_w <= -margin for every loser l
    rows = np.array([np.append(W[l] - W[winner], 0.0) for l in losers])
    rhs = np.array([-margin - (W[l] - W[winner]) @ xi - b[l] + b[winner] for l in losers])
    res = optimize.linprog(cost, A_ub=np.vstack([box, rows]),
                           b_ub=np.concatenate([np.zeros(2 * d), rhs]),
                           bounds=[(low - v, high - v) for v in xi] + [(0, None)],
                           method="highs")
    return res.fun if res.status == 0 else np.inf

  W, b, x = (np.asarray(a, np.float64) for a in (W, b, x))
  if target is not None:
    return np.array([solve(xi, t, [j for j in range(k) if j != t]) for xi, t in zip(x, target)])
  return np.array([min(solve(xi, c, [yi]) for c in range(k) if c != yi)
                   for xi, yi in zip(x, label)])


def test_epsilon_search_against_linear_program():
  """Untargeted and targeted FGSM on a 4-class affine model: never below the LP optimum (the
  result is a feasible point); on a 2-class model without active box constraints the sign step is
  the optimal direction, so the chosen epsilon is the first grid point above the optimum."""
  rng = np.random.default_rng(1)
  W, b = rng.normal(size=(4, 12)).astype(np.float32), rng.normal(size=4).astype(np.float32)
  x = rng.uniform(0.0, 1.0, size=(10, 12)).astype(np.float32)
  y = np.argmax(x @ W.T + b, -1).astype(np.int32)
  fn = lambda z: z @ W.T + b
  grid = np.arange(1, 101) * 0.01
  for kw, lp in [(dict(), dict(label=y)), (dict(targeted=True), dict(target=(y + 1) % 4))]:
    labels = y if "label" in lp else lp["target"]
    r, eps = fgsm_epsilon_search(fn, x, labels, epsilons=grid, bounds=(0, 1),
                                 return_epsilon=True, **kw)
    opt = min_linf_lp(W, b, x, (0, 1), **lp)
    ok = np.asarray(r.success)
    assert ok.sum() >= 5, ok
    linf = np.asarray(r.distortion["linf"])
    assert np.all(linf[ok] >= opt[ok] - 1e-5), (linf, opt)
    assert np.all(np.asarray(eps)[ok] >= linf[ok] - 1e-6)
    pred = np.argmax(fn(np.asarray(r.adversarial)), -1)
    assert np.all((pred == labels)[ok] if kw else (pred != labels)[ok])
  # two classes, x in the middle of the box: the grid point just above the optimum
  w = rng.normal(size=12).astype(np.float32)
  W2, b2 = np.stack([w, -w]) / 2, np.zeros(2, np.float32)
  x2 = rng.uniform(0.4, 0.6, size=(8, 12)).astype(np.float32)
  y2 = (x2 @ w < 0).astype(np.int32)
  opt = min_linf_lp(W2, b2, x2, (0, 1), label=y2)
  assert np.all(opt < 0.3)  # the box (distance >= 0.4) stays inactive
  _, eps = fgsm_epsilon_search(lambda z: z @ W2.T, x2, y2, epsilons=grid, bounds=(0, 1),
                               return_epsilon=True)
  eps = np.asarray(eps)
  assert np.all(eps >= opt - 1e-6) and np.all(eps < opt + 0.01 + 1e-6), (eps, opt)


@pytest.mark.xdist_group(name="quickstart")
def test_equals_foolbox_fgsm(quickstart_natural):
  """Identical to Foolbox's FGSM at every pixel whose gradient is above rounding noise.

  The two libraries' cross-entropy gradients agree to ~3e-7 absolute; where |dCE/dx| is below
  1e-5 (saturated images: ~1e-13) the sign is rounding noise of two differently written
  cross-entropies, so those pixels are not compared."""
  import foolbox as fb
  import optax
  model, _, test = quickstart_natural
  fn = as_logits_fn(model)
  x, y = test.images[:256], test.labels[:256]
  _, theirs, _ = fb.attacks.FGSM()(fb.JAXModel(fn, bounds=(0, 1)), jax.numpy.asarray(x),
                                   jax.numpy.asarray(y), epsilons=0.3)
  ours = np.asarray(fgsm(fn, x, y, epsilon=0.3, bounds=(0, 1)))
  grad = jax.grad(lambda z: optax.softmax_cross_entropy_with_integer_labels(fn(z), y).sum())(x)
  informative = np.abs(np.asarray(grad)) > 1e-5
  assert informative.sum() >= 5000, informative.sum()
  np.testing.assert_allclose(ours[informative], np.asarray(theirs)[informative], atol=1e-6)
