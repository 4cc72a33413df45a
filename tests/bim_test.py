"""Tests of advbound/attacks/bim.py: linear programs, PGD without random start, Kurakin's
iteration count, the shared grid contract with FGSM, Foolbox agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advbound.attacks import fgsm_epsilon_search, pgd
from advbound.attacks.bim import bim_epsilon_search, kurakin_num_steps
from advbound.attacks.result import AttackResult
from advbound.models import as_logits_fn
from tests.fgsm_test import min_linf_lp


def _affine(seed=0, k=4, d=12, n=10):
  rng = np.random.default_rng(seed)
  W, b = rng.normal(size=(k, d)).astype(np.float32), rng.normal(size=k).astype(np.float32)
  x = rng.uniform(0.0, 1.0, size=(n, d)).astype(np.float32)
  y = np.argmax(x @ W.T + b, -1).astype(np.int32)
  return W, b, x, y


def test_kurakin_num_steps():
  # int(min(eps / step + 4, 1.25 eps / step))
  assert kurakin_num_steps(16, 1) == 20
  assert kurakin_num_steps(0.3, 1 / 256) == 80      # min(80.8, 96)
  assert kurakin_num_steps(0.1, 0.025) == 5          # ratio 3.9999999999999996 -> 4
  assert kurakin_num_steps(2, 1) == 2                # min(6, 2.5)
  assert kurakin_num_steps(0.5, 1) == 0
  assert kurakin_num_steps(0, 1) == 0


def test_against_linear_program():
  """Every result is a feasible point: never below the LP optimum, classified as wanted."""
  W, b, x, y = _affine()
  fn = lambda z: z @ W.T + b
  grid = np.arange(1, 51) * 0.02
  for kw, lp in [(dict(), dict(label=y)), (dict(targeted=True), dict(target=(y + 2) % 4))]:
    labels = y if "label" in lp else lp["target"]
    r, eps = bim_epsilon_search(fn, x, labels, epsilons=grid, step_size=0.005, bounds=(0, 1),
                                return_epsilon=True, **kw)
    opt = min_linf_lp(W, b, x, (0, 1), **lp)
    ok = np.asarray(r.success)
    assert ok.sum() >= 8, ok
    linf = np.asarray(r.distortion["linf"])
    assert np.all(linf[ok] >= opt[ok] - 1e-5), (linf, opt)
    assert np.all(linf[ok] <= np.asarray(eps)[ok] + 1e-6)
    pred = np.argmax(fn(np.asarray(r.adversarial)), -1)
    assert np.all((pred == labels)[ok] if kw else (pred != labels)[ok])
    np.testing.assert_array_equal(np.asarray(r.adversarial)[~ok], x[~ok])
    assert np.all(np.isinf(np.asarray(eps)[~ok]))


def test_two_class_linear_within_one_grid_step():
  """For a 2-class linear model the gradient sign is constant and optimal; with eps / step >= 4
  BIM reaches the corner eps * sign(w), so the chosen epsilon is the first grid point above the
  LP optimum (the box being inactive)."""
  rng = np.random.default_rng(2)
  w = rng.normal(size=16).astype(np.float32)
  W, b = np.stack([w, -w]) / 2, np.zeros(2, np.float32)
  x = rng.uniform(0.4, 0.6, size=(8, 16)).astype(np.float32)
  y = (x @ w < 0).astype(np.int32)
  opt = min_linf_lp(W, b, x, (0, 1), label=y)
  assert np.all(opt < 0.05)
  grid = np.arange(1, 61) * 0.001
  r, eps = bim_epsilon_search(lambda z: z @ W.T, x, y, epsilons=grid, step_size=0.0002,
                              bounds=(0, 1), return_epsilon=True)
  eps = np.asarray(eps)
  assert np.all(r.success)
  assert np.all(eps >= opt - 1e-6) and np.all(eps < opt + 0.001 + 1e-6), (eps, opt)


def test_one_epsilon_is_pgd_without_random_start():
  W, b, x, y = _affine(seed=3)
  fn = lambda z: z @ W.T + b
  for targeted, labels in [(False, y), (True, (y + 1) % 4)]:
    for eps in (0.05, 0.3):
      ours = bim_epsilon_search(fn, x, labels, epsilons=[eps], step_size=0.01, bounds=(0, 1),
                                targeted=targeted, stop_at_success=False)
      ref = np.asarray(pgd(fn, jax.random.key(0), x, labels, epsilon=eps, step_size=0.01,
                           num_steps=kurakin_num_steps(eps, 0.01), bounds=(0, 1),
                           random_start=False, targeted=targeted))
      pred = np.argmax(ref @ W.T + b, -1)
      ok = (pred == labels) if targeted else (pred != labels)
      np.testing.assert_array_equal(ours.success, ok)
      np.testing.assert_allclose(np.asarray(ours.adversarial), np.where(ok[:, None], ref, x),
                                 atol=1e-6)


def test_stop_at_success_keeps_the_first_successful_iterate():
  """Stopping at the first success (Cao & Gong) never ends further away than running all steps,
  succeeds wherever the full run does, and its iterate is on the grid of whole steps."""
  W, b, x, y = _affine(seed=4, n=16)
  fn = lambda z: z @ W.T + b
  kw = dict(epsilons=[0.4], step_size=0.01, bounds=(0, 1))
  full = bim_epsilon_search(fn, x, y, stop_at_success=False, **kw)
  first = bim_epsilon_search(fn, x, y, **kw)
  assert np.all(np.asarray(first.success) | ~np.asarray(full.success))
  both = np.asarray(first.success) & np.asarray(full.success)
  assert both.sum() >= 8
  assert np.all(np.asarray(first.distortion["linf"])[both]
                <= np.asarray(full.distortion["linf"])[both] + 1e-6)
  assert np.any(np.asarray(first.distortion["linf"])[both]
                < np.asarray(full.distortion["linf"])[both] - 0.05)


def test_chunking_does_not_change_the_answer():
  W, b, x, y = _affine(seed=5, n=7)
  fn = lambda z: z @ W.T + b
  kw = dict(epsilons=np.arange(1, 21) * 0.02, step_size=0.005, bounds=(0, 1),
            return_epsilon=True)
  r, eps = bim_epsilon_search(fn, x, y, **kw)
  rc, epsc = bim_epsilon_search(fn, x, y, batch_size=3, **kw)
  np.testing.assert_array_equal(r.adversarial, rc.adversarial)
  np.testing.assert_array_equal(eps, epsc)


@pytest.mark.parametrize("search,extra", [(fgsm_epsilon_search, {}),
                                          (bim_epsilon_search, dict(step_size=0.01))])
def test_searches_share_grid_contract(search, extra):
  """FGSM and BIM searches: same argument names, validation and return form."""
  W, b, x, y = _affine(seed=6, n=3)
  fn = lambda z: z @ W.T + b
  kw = dict(bounds=(0, 1), **extra)
  r = search(fn, x, y, epsilons=[0.1, 0.5, 1.0], **kw)
  assert isinstance(r, AttackResult)
  r2, eps = search(fn, x, y, epsilons=[0.1, 0.5, 1.0], return_epsilon=True, **kw)
  np.testing.assert_array_equal(r.adversarial, r2.adversarial)
  assert eps.shape == (3,) and eps.dtype == jnp.float32
  for bad in ([0.2, 0.1], [], [-0.1, 0.2], [[0.1, 0.2]], [0.1, float("nan")]):
    with pytest.raises(ValueError, match="epsilons must be a non-empty increasing grid"):
      search(fn, x, y, epsilons=bad, **kw)
  with pytest.raises(ValueError, match="outside bounds"):
    search(fn, x + 2, y, epsilons=[0.1], **kw)
  with pytest.raises(ValueError, match="y must have shape"):
    search(fn, x, y[:2], epsilons=[0.1], **kw)
  with pytest.raises(ValueError, match="batch_size"):
    search(fn, x, y, epsilons=[0.1], batch_size=-1, **kw)


def test_bad_step_size():
  W, b, x, y = _affine(n=2)
  for step in (0.0, -0.1, float("inf")):
    with pytest.raises(ValueError, match="step_size"):
      bim_epsilon_search(lambda z: z @ W.T + b, x, y, epsilons=[0.1], step_size=step,
                         bounds=(0, 1))


@pytest.mark.xdist_group(name="quickstart")
def test_equals_foolbox_basic_iterative(quickstart_natural):
  """Identical to Foolbox's LinfBasicIterativeAttack (same eps, step, steps, no random start) on
  the trained MnistCNN, untargeted and targeted (to the runner-up class).

  The model's logits are divided by 10 for both libraries: the natural model's softmax saturates
  (median logit gap 16 at the clean images, and as large once a targeted example has crossed),
  where the cross-entropy gradient is rounding noise whose sign two differently written
  cross-entropies do not share (see fgsm_test), and BIM keeps walking along those signs
  (measured without the division: 0.02-0.34 apart at a quarter of the pixels)."""
  import foolbox as fb
  model, _, test = quickstart_natural
  fn = as_logits_fn(model)
  logits_fn = lambda z: fn(z) / 10.0
  x, y = test.images[:32], test.labels[:32]
  runner_up = np.argsort(np.asarray(fn(x)), -1)[:, -2].astype(np.int32)
  for targeted, labels, eps in [(False, y, 0.2), (True, runner_up, 0.15)]:
    steps = kurakin_num_steps(eps, 0.01)
    criterion = (fb.criteria.TargetedMisclassification(jnp.asarray(labels)) if targeted
                 else jnp.asarray(labels))
    attack = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=0.01, steps=steps,
                                                 random_start=False)
    _, theirs, ok = attack(fb.JAXModel(logits_fn, bounds=(0, 1)), jnp.asarray(x), criterion,
                           epsilons=eps)
    ours = bim_epsilon_search(logits_fn, x, labels, epsilons=[eps], step_size=0.01,
                              bounds=(0, 1), targeted=targeted, stop_at_success=False)
    ok = np.asarray(ok)
    assert 4 <= ok.sum() < len(x), ok.sum()  # measured: 14 and 8 of 32
    np.testing.assert_array_equal(np.asarray(ours.success), ok)
    np.testing.assert_allclose(np.asarray(ours.adversarial)[ok], np.asarray(theirs)[ok],
                               atol=1e-6)
    # Cao & Gong's early stop succeeds wherever the full run does
    first = bim_epsilon_search(logits_fn, x, labels, epsilons=[eps], step_size=0.01,
                               bounds=(0, 1), targeted=targeted)
    assert np.all(np.asarray(first.success)[ok])
