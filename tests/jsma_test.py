"""Tests of advbound/attacks/jsma.py against a plain NumPy double loop over pairs."""

import jax.numpy as jnp
import numpy as np
import pytest

from advbound.attacks.jsma import best_pair, iteration_cap, jsma


def _reference_jsma(jacobian, logits, x, target, *, low, high, theta, gamma):
  """The algorithm, one image at a time: x [D] float64 -> (adversarial [D], success)."""
  x = np.array(x, np.float64)
  d = x.size
  domain = x < high
  for _ in range(int(np.floor(d * gamma / 2))):
    if np.argmax(logits(x)) == target:
      break
    jac = jacobian(x)  # [K, D]
    a = jac[target]
    b = sum(jac[j] for j in range(jac.shape[0]) if j != target)
    best, best_score = None, -np.inf
    for p in range(d):
      for q in range(p + 1, d):
        if domain[p] and domain[q]:
          alpha, beta = a[p] + a[q], b[p] + b[q]
          if alpha > 0 and beta < 0 and -alpha * beta > best_score:
            best, best_score = (p, q), -alpha * beta
    if best is None:
      break
    for i in best:
      x[i] = min(x[i] + theta * (high - low), high)
      domain[i] = False
  return x, bool(np.argmax(logits(x)) == target)


def _linear(seed, d=16, k=4):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(k, d)).astype(np.float32)
  b = rng.normal(scale=0.5, size=k).astype(np.float32)
  fn = lambda z: z @ w.T + b
  return fn, (lambda v: w.astype(np.float64)), (lambda v: w @ v + b)


def _mlp(seed, d=12, hidden=8, k=3):
  rng = np.random.default_rng(seed)
  u = rng.normal(size=(hidden, d)).astype(np.float32)
  c = rng.normal(size=hidden).astype(np.float32)
  v = rng.normal(size=(k, hidden)).astype(np.float32)
  fn = lambda z: jnp.tanh(z @ u.T + c) @ v.T

  def jacobian(x):
    h = np.tanh(u @ x + c)
    return (v * (1 - h ** 2)) @ u

  return fn, jacobian, (lambda x: v @ np.tanh(u @ x + c))


def _inputs(seed, n, d, low=0.0, high=1.0):
  """Images with some features already at the upper bound (outside the initial domain)."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(low, low + 0.6 * (high - low), size=(n, d)).astype(np.float32)
  x[rng.uniform(size=(n, d)) < 0.15] = high
  return x


def _compare(fn, jacobian, logits, x, targets, **kw):
  r = jsma(fn, x, targets, **kw)
  low, high = kw["bounds"]
  for i in range(len(x)):
    want, ok = _reference_jsma(jacobian, logits, x[i], targets[i], low=low, high=high,
                               theta=kw.get("theta", 1.0), gamma=kw.get("gamma", 1.0))
    assert bool(r.success[i]) == ok, i
    if ok:
      np.testing.assert_array_equal(r.adversarial[i] != x[i], want != x[i])
      np.testing.assert_allclose(np.asarray(r.adversarial[i]), want, rtol=0, atol=1e-5)
      assert float(r.distortion["l0"][i]) == np.sum(want != x[i])
    else:  # failures return the input
      np.testing.assert_array_equal(r.adversarial[i], x[i])
  return r


@pytest.mark.parametrize("theta", [1.0, 0.3])
def test_matches_reference_linear(theta):
  fn, jacobian, logits = _linear(0)
  x = _inputs(1, 6, 16)
  pred = np.argmax(fn(x), -1)
  rows = [(i, t) for i in range(len(x)) for t in range(4) if t != pred[i]]
  xs = np.stack([x[i] for i, _ in rows])
  ts = np.array([t for _, t in rows], np.int32)
  r = _compare(fn, jacobian, logits, xs, ts, bounds=(0.0, 1.0), theta=theta)
  assert 0 < int(np.sum(r.success)) < len(ts)  # both outcomes are exercised


def test_matches_reference_mlp_and_other_bounds():
  """A nonlinear model (the gradients change every step) on data in [0, 255]."""
  fn, jacobian, logits = _mlp(3)
  scaled = lambda z: fn(z / 255.0)
  x = _inputs(4, 8, 12, 0.0, 255.0)
  targets = np.arange(8, dtype=np.int32) % 3
  r = jsma(scaled, x, targets, bounds=(0.0, 255.0), theta=0.4)
  for i in range(len(x)):
    want, ok = _reference_jsma(lambda v: jacobian(v / 255.0) / 255.0,
                               lambda v: logits(v / 255.0), x[i], targets[i], low=0.0,
                               high=255.0, theta=0.4, gamma=1.0)
    assert bool(r.success[i]) == ok
    if ok:
      np.testing.assert_allclose(np.asarray(r.adversarial[i]), want, rtol=0, atol=1e-3)
  assert np.any(r.success) and np.any(np.asarray(r.distortion["l0"]) > 2)


def test_blocks_give_the_same_answer():
  fn, _, _ = _mlp(5, d=13)
  x = _inputs(6, 10, 13)
  targets = np.arange(10, dtype=np.int32) % 3
  runs = [jsma(fn, x, targets, bounds=(0.0, 1.0), theta=0.5, pair_block=b)
          for b in (None, 1, 2, 4, 5, 13, 64)]
  for r in runs[1:]:
    np.testing.assert_array_equal(r.adversarial, runs[0].adversarial)
    np.testing.assert_array_equal(r.success, runs[0].success)
  chunked = jsma(fn, x, targets, bounds=(0.0, 1.0), theta=0.5, batch_size=3, pair_block=4)
  np.testing.assert_array_equal(chunked.adversarial, runs[0].adversarial)


@pytest.mark.parametrize("d,block", [(37, 1), (37, 5), (37, 8), (37, 37), (3072, 100)])
def test_best_pair_brute_force(d, block):
  """Integer-valued gradients make exact ties: they go to the smallest (p, q)."""
  rng = np.random.default_rng(d + block)
  n = 4
  a = rng.integers(-3, 4, size=(n, d)).astype(np.float32)
  b = rng.integers(-3, 4, size=(n, d)).astype(np.float32)
  domain = rng.uniform(size=(n, d)) < 0.8
  domain[-1] = False  # nothing qualifies
  p, q, found = best_pair(jnp.asarray(a), jnp.asarray(b), jnp.asarray(domain), block)
  for i in range(n):
    alpha = a[i][:, None] + a[i][None, :]
    beta = b[i][:, None] + b[i][None, :]
    ok = (domain[i][:, None] & domain[i][None, :] & np.triu(np.ones((d, d), bool), 1)
          & (alpha > 0) & (beta < 0))
    if not ok.any():
      assert not found[i]
      continue
    score = np.where(ok, -alpha * beta, -np.inf)
    want = np.unravel_index(np.argmax(score), score.shape)  # first maximum, row-major
    assert found[i] and (int(p[i]), int(q[i])) == tuple(int(v) for v in want)


def test_iteration_cap():
  fn, jacobian, logits = _linear(0, d=20)
  x = np.full((4, 20), 0.1, np.float32)
  targets = np.array([0, 1, 2, 3], np.int32)
  gamma = 0.2  # floor(20 * 0.2 / 2) = 2 iterations: at most 4 features
  assert iteration_cap(20, gamma) == 2
  free = jsma(fn, x, targets, bounds=(0.0, 1.0), theta=0.2)
  capped = _compare(fn, jacobian, logits, x, targets, bounds=(0.0, 1.0), theta=0.2, gamma=gamma)
  assert np.all(np.asarray(capped.distortion["l0"]) <= 4)
  assert np.any(np.asarray(free.distortion["l0"]) > 4)  # the cap binds somewhere
  assert np.sum(capped.success) < np.sum(free.success)


def test_already_target_is_unchanged():
  fn, _, logits = _linear(0)
  x = _inputs(1, 3, 16)
  pred = np.argmax(fn(x), -1).astype(np.int32)
  r = jsma(fn, x, pred, bounds=(0.0, 1.0))
  assert np.all(r.success)
  np.testing.assert_array_equal(r.adversarial, x)


def test_bad_arguments():
  fn, _, _ = _linear(0)
  x = _inputs(1, 2, 16)
  t = np.array([0, 1], np.int32)
  with pytest.raises(ValueError, match="theta"):
    jsma(fn, x, t, bounds=(0, 1), theta=0.0)
  with pytest.raises(ValueError, match="theta"):
    jsma(fn, x, t, bounds=(0, 1), theta=-1.0)
  with pytest.raises(ValueError, match="gamma"):
    jsma(fn, x, t, bounds=(0, 1), gamma=0.0)
  with pytest.raises(ValueError, match="gamma"):
    jsma(fn, x, t, bounds=(0, 1), gamma=1.5)
  with pytest.raises(ValueError, match="target holds label 4"):
    jsma(fn, x, np.array([0, 4], np.int32), bounds=(0, 1))
  with pytest.raises(ValueError, match="target holds label -1"):
    jsma(fn, x, np.array([-1, 0], np.int32), bounds=(0, 1))
  with pytest.raises(ValueError, match="outside bounds"):
    jsma(fn, x + 2.0, t, bounds=(0, 1))
  with pytest.raises(ValueError, match="pair_block"):
    jsma(fn, x, t, bounds=(0, 1), pair_block=0)
