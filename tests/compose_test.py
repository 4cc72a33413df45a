"""Tests of advbound/attacks/compose.py: untargeted-from-targeted, combined and adapted attacks,
by construction and against L-inf linear programs and L2 quadratic programs."""

import functools

import jax
import numpy as np
import pytest
from scipy import optimize

from advbound.attacks import carlini_wagner_l2
from advbound.attacks.bim import bim_epsilon_search
from advbound.attacks.compose import amplify, combine, untargeted
from advbound.attacks.result import AttackResult, make_result
from tests.fgsm_test import min_linf_lp


def _result(x, adversarial, success):
  return make_result(np.asarray(x, np.float32), np.asarray(adversarial, np.float32),
                     np.asarray(success, bool))


def test_combine_takes_the_smallest_successful_candidate():
  x = np.zeros((4, 3), np.float32)
  a = _result(x, [[0.1, 0, 0], [0.5, 0, 0], [0.3, 0, 0], [0.2, 0, 0]], [1, 1, 0, 0])
  b = _result(x, [[0.06, 0.06, 0.06], [0.2, 0, 0], [0.4, 0, 0], [0.1, 0, 0]], [1, 1, 1, 0])
  r = combine(x, [a, b], norm="linf")
  np.testing.assert_array_equal(r.success, [True, True, True, False])
  np.testing.assert_allclose(r.adversarial, [[0.06, 0.06, 0.06], [0.2, 0, 0], [0.4, 0, 0],
                                             [0, 0, 0]])
  np.testing.assert_allclose(r.distortion["linf"], [0.06, 0.2, 0.4, 0.0], rtol=1e-6)
  # the norm decides: in L2 (0.1 < 0.104) and L0 the first candidate of example 0 is smaller
  np.testing.assert_allclose(combine(x, [a, b], norm="l2").adversarial[0], [0.1, 0, 0])
  np.testing.assert_allclose(combine(x, [a, b], norm="l0").adversarial[0], [0.1, 0, 0])
  # ties go to the first candidate
  np.testing.assert_allclose(combine(x, [b, b], norm="rms").adversarial, b.adversarial)
  # a success override (the classifier under evaluation) replaces the candidates' own; it
  # judges the rows as they are (a failed candidate's row is the input itself)
  override = np.array([[False, True, True, False], [False, False, False, True]])
  r = combine(x, [a, b], norm="linf", success=override)
  np.testing.assert_array_equal(r.success, [False, True, True, True])
  np.testing.assert_allclose(r.adversarial, [[0, 0, 0], [0.5, 0, 0], [0, 0, 0], [0, 0, 0]])
  r = combine(x, [a, b], norm="linf", success=np.array([[True] * 4, [True] * 4]))
  np.testing.assert_allclose(r.adversarial, [[0.06, 0.06, 0.06], [0.2, 0, 0], [0, 0, 0],
                                             [0, 0, 0]])


def test_combine_bad_arguments():
  x = np.zeros((2, 3), np.float32)
  a = _result(x, x + 0.1, [True, False])
  with pytest.raises(ValueError, match="unknown norm 'l1'"):
    combine(x, [a], norm="l1")
  with pytest.raises(ValueError, match="non-empty list"):
    combine(x, [], norm="l2")
  with pytest.raises(ValueError, match=r"candidates\[1\] must be an AttackResult"):
    combine(x, [a, x], norm="l2")
  with pytest.raises(ValueError, match=r"candidates\[0\] has adversarial shape"):
    combine(np.zeros((3, 3), np.float32), [a], norm="l2")
  with pytest.raises(ValueError, match="success must be bool"):
    combine(x, [a], norm="l2", success=np.ones((2, 2), bool))
  with pytest.raises(ValueError, match="success must be bool"):
    combine(x, [a], norm="l2", success=np.ones((1, 2), np.int32))


def test_untargeted_by_construction():
  """A stub targeted attack whose outcome per (example, target) is fixed: success iff some
  target succeeds, the smallest successful one, per-target rows indexed by target class."""
  k, n = 4, 5
  x = np.full((n, 2), 0.5, np.float32)
  y = np.array([0, 1, 2, 3, 1], np.int32)
  size = np.random.default_rng(0).uniform(0.01, 0.4, size=(n, k)).astype(np.float32)
  works = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1], [0, 1, 0, 0], [1, 0, 1, 1]], bool)
  calls = []

  def stub(logits_fn, xs, target, *, scale):
    calls.append(np.asarray(target))
    assert np.all(target != y) and scale == 2.0
    rows = np.arange(len(target))
    adv = xs + scale * size[rows, target][:, None] * np.array([1.0, -1.0], np.float32) / 2
    return _result(xs, adv, works[rows, target])

  best, per = untargeted(stub, None, x, y, num_classes=k, norm="linf", return_per_target=True,
                         scale=2.0)
  assert len(calls) == k - 1
  # every example met every other class once (the call for k had targets (y + k) mod K)
  np.testing.assert_array_equal(np.sort(np.stack(calls), 0),
                                np.array([[t for t in range(k) if t != yi] for yi in y]).T)
  for j, targets in enumerate(calls):
    np.testing.assert_array_equal(targets, (y + j + 1) % k)
  allowed = works & (np.arange(k)[None, :] != y[:, None])
  np.testing.assert_array_equal(best.success, allowed.any(1))
  expected = np.where(allowed, size, np.inf).min(1)
  np.testing.assert_allclose(np.asarray(best.distortion["linf"]),
                             np.where(allowed.any(1), expected, 0.0), rtol=1e-6)
  assert isinstance(per, AttackResult) and per.adversarial.shape == (k, n, 2)
  np.testing.assert_array_equal(np.asarray(per.success).T, allowed)
  np.testing.assert_allclose(np.asarray(per.distortion["linf"]).T, np.where(allowed, size, 0),
                             rtol=1e-6)
  row = jax.tree.map(lambda a: a[2], per)  # target class 2 alone
  np.testing.assert_array_equal(row.success, allowed[:, 2])
  assert np.all(np.asarray(per.adversarial)[y, np.arange(n)] == x)  # t == y: the input


def test_untargeted_bim_against_linear_program():
  """U-IGSM on a 3-class affine model: never below the untargeted LP optimum (the minimum over
  the other classes), and the same as running every target by hand and combining."""
  rng = np.random.default_rng(1)
  W, b = rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=3).astype(np.float32)
  x = rng.uniform(0, 1, size=(6, 6)).astype(np.float32)
  y = np.argmax(x @ W.T + b, -1).astype(np.int32)
  fn = lambda z: z @ W.T + b
  attack = functools.partial(bim_epsilon_search, targeted=True, epsilons=np.arange(1, 41) * 0.025,
                             step_size=0.005, bounds=(0, 1))
  best, per = untargeted(attack, fn, x, y, num_classes=3, norm="linf", return_per_target=True)
  opt = min_linf_lp(W, b, x, (0, 1), label=y)
  ok = np.asarray(best.success)
  assert ok.sum() >= 5
  assert np.all(np.asarray(best.distortion["linf"])[ok] >= opt[ok] - 1e-5)
  assert np.all(np.argmax(fn(np.asarray(best.adversarial)), -1)[ok] != y[ok])
  by_hand = combine(x, [attack(fn, x, ((y + k) % 3).astype(np.int32)) for k in (1, 2)],
                    norm="linf")
  np.testing.assert_array_equal(best.adversarial, by_hand.adversarial)
  for t in range(3):
    np.testing.assert_array_equal(np.asarray(per.success)[t][y == t], False)


def _min_l2_to_target(W, b, xi, t):
  """The distance from xi to the closest point of [0, 1]^D whose affine logits put t on top:
  a quadratic program (SLSQP), inf where the target's region misses the box (an LP says)."""
  others = [j for j in range(W.shape[0]) if j != t]
  A = np.array([W[j] - W[t] for j in others])
  rhs = np.array([b[t] - b[j] for j in others])  # A z <= rhs: t on top
  box = [(0, 1)] * len(xi)
  if optimize.linprog(np.zeros(len(xi)), A_ub=A, b_ub=rhs, bounds=box).status == 2:
    return np.inf
  res = optimize.minimize(lambda z: np.sum((z - xi) ** 2), xi, jac=lambda z: 2 * (z - xi),
                          constraints=[{"type": "ineq", "fun": lambda z: rhs - A @ z,
                                        "jac": lambda z: -A}],
                          bounds=box, method="SLSQP", options=dict(ftol=1e-12, maxiter=500))
  assert res.success, res
  return np.sqrt(res.fun)


def test_untargeted_cw_l2_against_quadratic_program():
  """U-CW-L2 with norm "l2": the minimum over targets of the exact closest points."""
  rng = np.random.default_rng(2)
  W, b = rng.normal(size=(3, 5)), rng.normal(size=3)
  x = rng.uniform(0.2, 0.8, size=(3, 5)).astype(np.float32)
  y = np.argmax(x @ W.T + b, -1).astype(np.int32)
  Wf, bf = W.astype(np.float32), b.astype(np.float32)
  attack = functools.partial(carlini_wagner_l2, targeted=True, bounds=(0.0, 1.0),
                             binary_search_steps=9, max_iterations=1000)
  r = untargeted(attack, lambda z: z @ Wf.T + bf, x, y, num_classes=3, norm="l2")
  truth = np.array([min(_min_l2_to_target(W, b, xi.astype(np.float64), t)
                        for t in range(3) if t != yi) for xi, yi in zip(x, y)])
  assert np.all(r.success)
  ratio = np.asarray(r.distortion["l2"]) / truth
  assert np.all(ratio >= 1 - 1e-4) and np.all(ratio <= 1.02), ratio


def test_untargeted_bad_arguments():
  x, y = np.zeros((2, 3), np.float32), np.array([0, 1], np.int32)
  stub = lambda fn, xs, t: _result(xs, xs, np.zeros(len(xs), bool))
  with pytest.raises(ValueError, match="unknown norm"):
    untargeted(stub, None, x, y, num_classes=3, norm="L2")
  with pytest.raises(ValueError, match="num_classes"):
    untargeted(stub, None, x, y, num_classes=1, norm="l2")
  with pytest.raises(ValueError, match="label 3 outside"):
    untargeted(stub, None, x, np.array([0, 3], np.int32), num_classes=3, norm="l2")
  with pytest.raises(ValueError, match="targeted_attack must be callable"):
    untargeted("cw", None, x, y, num_classes=3, norm="l2")
  with pytest.raises(ValueError, match="must return an AttackResult"):
    untargeted(lambda fn, xs, t: (xs, t), None, x, y, num_classes=3, norm="l2")


def test_amplify():
  rng = np.random.default_rng(3)
  x = rng.uniform(0.3, 0.7, size=(4, 6)).astype(np.float32)
  adv = np.clip(x + rng.uniform(-0.1, 0.1, size=x.shape), 0, 1).astype(np.float32)
  np.testing.assert_array_equal(amplify(x, adv, 0.0, bounds=(0, 1)), adv)  # alpha 0: identity
  out = np.asarray(amplify(x, adv, 0.5, bounds=(0, 1)))  # nothing reaches the box
  np.testing.assert_allclose(out - x, 1.5 * (adv - x), atol=1e-6)
  for name in ("l2", "linf", "rms"):
    np.testing.assert_allclose(np.asarray(_result(x, out, [True] * 4).distortion[name]),
                               1.5 * np.asarray(_result(x, adv, [True] * 4).distortion[name]),
                               rtol=1e-5)
  # a large alpha clips at the bounds, and [0, 255] bounds work the same way
  big = np.asarray(amplify(x, adv, 10.0, bounds=(0, 1)))
  np.testing.assert_allclose(big, np.clip(x + 11 * (adv - x), 0, 1), atol=1e-6)
  assert big.min() >= 0 and big.max() <= 1 and np.any(big == 0) and np.any(big == 1)
  np.testing.assert_allclose(amplify(255 * x, 255 * adv, 10.0, bounds=(0, 255)), 255 * big,
                             rtol=1e-5, atol=1e-3)
  with pytest.raises(ValueError, match="alpha"):
    amplify(x, adv, -0.5, bounds=(0, 1))
  with pytest.raises(ValueError, match="adversarial must have the shape"):
    amplify(x, adv[:2], 0.5, bounds=(0, 1))
  with pytest.raises(ValueError, match="adversarial spans"):
    amplify(x, adv + 2, 0.5, bounds=(0, 1))
