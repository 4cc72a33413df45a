"""Tests of advbound/attacks/autoattack.py, the ensemble: on affine classifiers the robust
accuracy is known exactly (the minimal L-inf / L2 perturbation has a closed form) and AutoAttack
must reach it; never weaker than PGD-20; the order and bookkeeping of the reference; the rand
version on a randomised model; the sanity flags; bad arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advbound.attacks import pgd
from advbound.attacks.autoattack import autoattack

K, D = 10, 20
SHAPE = (5, 4, 1)  # D pixels as images (Square works on image windows)


def _affine(seed=0, n=60):
  """A K-class affine model over [0, 1]^D whose boundaries pass near points in [0.4, 0.6]^D
  (the box stays inactive for the budgets below); (fn, W, b, x, y = its predictions)."""
  rng = np.random.default_rng(seed)
  W = rng.normal(size=(K, D)).astype(np.float32)
  center = np.full(D, 0.5, np.float32)
  b = (-center @ W.T + 0.3 * rng.normal(size=K)).astype(np.float32)
  x = (center + rng.uniform(-0.1, 0.1, size=(n, D))).astype(np.float32)
  y = np.argmax(x @ W.T + b, -1).astype(np.int32)
  return (lambda z: z.reshape(len(z), -1) @ W.T + b), W, b, x.reshape((n,) + SHAPE), y


def _minimal(W, b, x, y, q):
  """Per example, min over k != y of (f_y - f_k) / |w_y - w_k|_q (q the dual norm's order)."""
  x = x.reshape(len(x), -1)
  f = x.astype(np.float64) @ W.T + b
  dw = W[y][:, None].astype(np.float64) - W[None]                   # [N, K, D]
  norms = np.linalg.norm(dw, ord=q, axis=-1)
  dist = (f[np.arange(len(x)), y][:, None] - f) / np.where(norms > 0, norms, 1)
  dist[np.arange(len(x)), y] = np.inf
  return dist.min(-1)


@pytest.mark.parametrize("norm,q", [("linf", 1), ("l2", 2)])
def test_affine_robust_accuracy_is_the_closed_form(norm, q):
  """An example is robust at epsilon iff its minimal perturbation exceeds epsilon: AutoAttack
  breaks every example below (by a 2% margin) and none above (no attack can)."""
  fn, W, b, x, y = _affine(seed=1 if norm == "l2" else 0)
  minimal = _minimal(W, b, x, y, q)
  eps = float(np.median(minimal))
  clear = np.abs(minimal - eps) > 0.02 * eps
  r = autoattack(fn, jax.random.key(0), x, y, norm=norm, epsilon=eps,
                 bounds=(0.0, 1.0), version="standard", batch_size=16)
  assert clear.sum() >= 50
  np.testing.assert_array_equal(r.robust[clear], (minimal > eps)[clear])
  assert r.accuracy["clean"] == 1.0 and r.n == len(x)
  # the gradient attacks already reach the closed form on a linear model
  assert set(r.broken_by[clear & (minimal < eps)]) <= {"apgd-ce", "apgd-t"}
  d = (r.adversarial - x).reshape(len(x), -1)
  size = np.abs(d).max(1) if norm == "linf" else np.linalg.norm(d, axis=1)
  assert np.all(size <= eps * (1 + 1e-5))


def _mlp(seed=0, n=64, d=D, hidden=32):
  """A small random ReLU network and points it classifies (its own predictions as labels)."""
  rng = np.random.default_rng(seed)
  w1 = rng.normal(size=(d, hidden)).astype(np.float32) / np.sqrt(d)
  w2 = rng.normal(size=(hidden, K)).astype(np.float32) / np.sqrt(hidden)
  fn = lambda z: jax.nn.relu(z.reshape(len(z), -1) @ w1) @ w2
  x = rng.uniform(0, 1, size=(n,) + SHAPE).astype(np.float32)
  y = np.asarray(jnp.argmax(fn(x), -1), np.int32)
  return fn, x, y


def test_never_weaker_than_pgd20_and_the_bookkeeping():
  fn, x, y = _mlp()
  eps = 0.05
  r = autoattack(fn, jax.random.key(1), x, y, norm="linf", epsilon=eps,
                            bounds=(0.0, 1.0))
  adv = pgd(fn, jax.random.key(2), x, y, epsilon=eps, step_size=eps / 4, num_steps=20,
            bounds=(0.0, 1.0))
  pgd_broken = np.asarray(jnp.argmax(fn(adv), -1)) != y
  assert pgd_broken.any() and not pgd_broken.all()
  assert np.all(~r.robust[pgd_broken])  # everything PGD-20 breaks, AutoAttack breaks
  # the reference's order; accuracy never rises; the last entry is the robust fraction
  assert list(r.accuracy) == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
  values = list(r.accuracy.values())
  assert all(a >= b for a, b in zip(values, values[1:]))
  assert values[-1] == r.robust.mean() and r.robust_count["square"] == r.robust.sum()
  # every broken example is misclassified at its stored adversarial input, within budget
  broken = ~r.robust
  assert np.all(np.asarray(jnp.argmax(fn(r.adversarial[broken]), -1)) != y[broken])
  assert np.abs(r.adversarial - x).max() <= eps * (1 + 1e-6)
  np.testing.assert_array_equal(r.adversarial[r.robust], x[r.robust])
  summary = r.summary()
  assert summary["n"] == len(x) and summary["version"] == "standard" and not summary["flags"]


def test_results_do_not_depend_on_the_batch_size():
  fn, x, y = _mlp(seed=3, n=24)
  one = autoattack(fn, jax.random.key(5), x, y, norm="l2", epsilon=0.3,
                              bounds=(0.0, 1.0), batch_size=24, attacks=("apgd-ce", "apgd-t"))
  other = autoattack(fn, jax.random.key(5), x, y, norm="l2", epsilon=0.3,
                                bounds=(0.0, 1.0), batch_size=5, attacks=("apgd-ce", "apgd-t"))
  np.testing.assert_array_equal(one.robust, other.robust)
  np.testing.assert_allclose(one.adversarial, other.adversarial, atol=1e-5)
  assert list(one.accuracy) == ["clean", "apgd-ce", "apgd-t"]


def test_rand_version_on_a_randomised_model():
  """On a model whose input is perturbed by fresh noise at every call, the rand version (EOT
  over 20 draws) is at least as strong as APGD-CE with one draw per step, and a deterministic
  version on it is flagged."""
  fn, x, y = _mlp(seed=4, n=48)

  def noisy(z, key):
    return fn(z + jax.random.uniform(key, z.shape, z.dtype, -0.1, 0.1))

  eps = 0.04
  rand = autoattack(noisy, jax.random.key(0), x, y, norm="linf", epsilon=eps,
                               bounds=(0.0, 1.0), version="rand", stochastic=True)
  assert list(rand.accuracy) == ["clean", "apgd-ce", "apgd-dlr"]
  once = autoattack(noisy, jax.random.key(0), x, y, norm="linf", epsilon=eps,
                               bounds=(0.0, 1.0), version="standard", stochastic=True,
                               attacks=("apgd-ce",))
  assert rand.robust_count["apgd-dlr"] <= once.robust_count["apgd-ce"] + 2
  assert any("randomised model" in f for f in once.flags) and not rand.flags
  with pytest.raises(ValueError, match="stochastic=True"):
    autoattack(fn, jax.random.key(0), x, y, norm="linf", epsilon=eps,
                          bounds=(0.0, 1.0), version="rand")


def test_a_model_without_gradients_is_flagged_and_broken_by_square():
  """A classifier whose input passes through a step function has a zero input gradient:
  the gradient attacks fail, Square (score-based) breaks it, and both checks fire."""
  fn0, W, b, x, y = _affine(seed=2, n=40)
  step = lambda z: jnp.floor(z * 50) / 50 + jax.lax.stop_gradient(0.0 * z)
  fn = lambda z: fn0(jax.lax.stop_gradient(step(z)))
  y = np.asarray(jnp.argmax(fn(x), -1), np.int32)
  eps = float(np.median(_minimal(W, b, x, y, 1))) * 2
  r = autoattack(fn, jax.random.key(0), x, y, norm="linf", epsilon=eps,
                            bounds=(0.0, 1.0), batch_size=40)
  # the gradient attacks break at most what their random starts hit; Square breaks more
  assert r.accuracy["square"] < r.accuracy["fab-t"]
  assert any("zero input gradient" in f for f in r.flags)
  assert any("Square lowered the robust accuracy" in f for f in r.flags)


@pytest.mark.parametrize("kwargs,match", [
    (dict(norm="l1"), "unknown norm 'l1'"),
    (dict(version="fast"), "unknown AutoAttack version 'fast'"),
    (dict(epsilon=-1.0), "epsilon"),
    (dict(attacks=("apgd-dlr",)), r"attacks \['apgd-dlr'\] are not in version 'standard'"),
])
def test_bad_arguments(kwargs, match):
  fn, x, y = _mlp(n=4)
  args = dict(norm="linf", epsilon=0.1, bounds=(0.0, 1.0), version="standard")
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    autoattack(fn, jax.random.key(0), x, y, **args)
