"""Tests of advbound/attacks/deepfool.py: closed forms on affine models, candidates,
the host and device loops, Foolbox."""

import jax.numpy as jnp
import numpy as np
import pytest

from advbound.attacks.deepfool import deepfool
from advbound.models import as_logits_fn

_EPS = 1e-4  # the step-length stabiliser of the authors' code and Foolbox


def _affine_problem(seed=0, n=6, d=20, k=5):
  """A k-class affine model whose boundaries pass within ~0.1 of points x in [0.45, 0.55]^d (the
  box stays inactive); returns (fn, W, b, x, y = the predictions)."""
  rng = np.random.default_rng(seed)
  W = rng.normal(size=(k, d)).astype(np.float32)
  center = np.full(d, 0.5, np.float32)
  b = (-center @ W.T + 0.3 * rng.normal(size=k)).astype(np.float32)
  x = (center + rng.uniform(-0.05, 0.05, size=(n, d))).astype(np.float32)
  fn = lambda z: z @ W.T + b
  y = np.argmax(x @ W.T + b, -1).astype(np.int32)
  return fn, W, b, x, y


def _nearest(W, b, x, y, q):
  """Per example, the class l and distance min_k |f_k - f_y| / |w_k - w_y|_q (the dual norm);
  also w_l - w_y [N, d]."""
  f = x.astype(np.float64) @ W.T + b
  dw = W[None].astype(np.float64) - W[y][:, None]                 # [N, k, d]
  norms = np.linalg.norm(dw, ord=q, axis=-1)
  dist = np.abs(f - f[np.arange(len(x)), y][:, None]) / np.where(norms > 0, norms, 1)
  dist[np.arange(len(x)), y] = np.inf
  l = np.argmin(dist, -1)
  return l, dist[np.arange(len(x)), l], dw[np.arange(len(x)), l]


@pytest.mark.parametrize("overshoot", [0.0, 0.02, 0.3])
def test_affine_l2_one_step_closed_form(overshoot):
  fn, W, b, x, y = _affine_problem()
  l, dist, dw = _nearest(W, b, x, y, 2)
  r = deepfool(fn, x, y, bounds=(0.0, 1.0), norm="l2", overshoot=overshoot, max_iterations=1)
  assert np.all(r.success)
  np.testing.assert_allclose(np.asarray(r.distortion["l2"]), (dist + _EPS) * (1 + overshoot),
                             rtol=1e-4)
  delta = np.asarray(r.adversarial) - x
  cos = np.sum(delta * dw, -1) / np.linalg.norm(delta, axis=-1) / np.linalg.norm(dw, axis=-1)
  np.testing.assert_allclose(cos, 1.0, atol=1e-5)  # straight towards the nearest boundary
  assert np.all(np.argmax(fn(np.asarray(r.adversarial)), -1) == l)
  # one step suffices: more iterations change nothing
  r50 = deepfool(fn, x, y, bounds=(0.0, 1.0), norm="l2", overshoot=overshoot)
  np.testing.assert_array_equal(r50.adversarial, r.adversarial)


@pytest.mark.parametrize("overshoot", [0.0, 0.02])
def test_affine_linf_one_step_closed_form(overshoot):
  fn, W, b, x, y = _affine_problem(seed=1)
  l, dist, dw = _nearest(W, b, x, y, 1)
  r = deepfool(fn, x, y, bounds=(0.0, 1.0), norm="linf", overshoot=overshoot, max_iterations=1)
  assert np.all(r.success)
  expected = (dist + _EPS) * (1 + overshoot)
  np.testing.assert_allclose(np.asarray(r.distortion["linf"]), expected, rtol=1e-4)
  delta = np.asarray(r.adversarial) - x
  np.testing.assert_allclose(delta, expected[:, None] * np.sign(dw), rtol=1e-3, atol=1e-6)
  assert np.all(np.argmax(fn(np.asarray(r.adversarial)), -1) == l)


def test_candidates_restrict_the_classes():
  """Class 1 has the second-largest logit but its boundary is 0.2 away; class 2 (third) is
  nearer, 0.1 away. Top-2 candidates only see class 1."""
  W = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 3.0]], np.float32)
  b = np.array([0.0, -0.35, -1.8], np.float32)  # at (0.5, 0.5): logits 0, -0.1, -0.3
  fn = lambda z: z @ W.T + b
  x, y = np.array([[0.5, 0.5]], np.float32), np.array([0], np.int32)
  os = 0.02
  for candidates, cls, axis, dist in ((2, 1, 0, 0.2), (3, 2, 1, 0.1), (None, 2, 1, 0.1)):
    r = deepfool(fn, x, y, bounds=(0.0, 1.0), candidates=candidates, overshoot=os)
    adv = np.asarray(r.adversarial)
    assert bool(r.success[0]) and int(np.argmax(fn(adv))) == cls, candidates
    expected = x.copy()
    expected[0, axis] += (dist + _EPS) * (1 + os)
    np.testing.assert_allclose(adv, expected, atol=1e-5)
  for bad in (1, 4, 2.0):
    with pytest.raises(ValueError, match="candidates"):
      deepfool(fn, x, y, bounds=(0.0, 1.0), candidates=bad)


def test_curved_boundary_needs_several_steps():
  """Class 1 is the ball |z - 1| < sqrt(0.5) (a concave logit difference): each linearised step
  falls short, the iterates go radially to the sphere, distance |x - 1| - sqrt(0.5)."""
  fn = lambda z: jnp.stack([jnp.zeros(z.shape[0]), 0.5 - jnp.sum((1 - z) ** 2, -1)], -1)
  x, y = np.full((1, 3), 0.5, np.float32), np.array([0], np.int32)
  dist = np.sqrt(0.75) - np.sqrt(0.5)
  assert not bool(deepfool(fn, x, y, bounds=(0.0, 1.0), max_iterations=1).success[0])
  r = deepfool(fn, x, y, bounds=(0.0, 1.0))
  assert bool(r.success[0])
  assert dist <= float(r.distortion["l2"][0]) <= 1.03 * dist
  np.testing.assert_allclose(np.asarray(r.adversarial)[0], np.asarray(r.adversarial)[0, 0])


def test_clipping_keeps_the_unclipped_total_and_inputs_already_misclassified():
  """h = z0 + z1 - 1.2 from (0.95, 0.05): the step along (1, 1) is clipped at z0 = 1, so further
  steps go on until z1 crosses 0.2 (the running total stays unclipped, as in Foolbox). An input
  already classified != y is returned as it is (success, distortion 0)."""
  fn = lambda z: jnp.stack([jnp.zeros(z.shape[0]), z[:, 0] + z[:, 1] - 1.2], -1)
  x = np.array([[0.95, 0.05], [0.9, 0.9]], np.float32)
  y = np.array([0, 0], np.int32)
  one = deepfool(fn, x, y, bounds=(0.0, 1.0), max_iterations=1)
  assert not bool(one.success[0])  # a failure returns the input
  np.testing.assert_array_equal(one.adversarial[0], x[0])
  r = deepfool(fn, x, y, bounds=(0.0, 1.0))
  adv = np.asarray(r.adversarial)
  assert np.all(r.success) and adv.min() >= 0.0 and adv.max() <= 1.0
  assert adv[0, 0] == 1.0 and 0.2 < adv[0, 1] < 0.2005, adv
  np.testing.assert_array_equal(adv[1], x[1])
  assert float(r.distortion["l2"][1]) == 0.0


def test_failure_returns_input():
  const = lambda z: jnp.zeros((z.shape[0], 3)).at[:, 0].set(1.0) + 0 * z.sum()
  x = np.full((2, 4), 0.5, np.float32)
  r = deepfool(const, x, np.zeros(2, np.int32), bounds=(0, 1), max_iterations=5)
  assert not np.any(r.success)
  np.testing.assert_array_equal(r.adversarial, x)
  np.testing.assert_array_equal(r.distortion["l2"], 0.0)


def test_bad_arguments():
  fn, _, _, x, y = _affine_problem(n=2)
  kw = dict(bounds=(0.0, 1.0))
  with pytest.raises(ValueError, match="'l1'"):
    deepfool(fn, x, y, norm="l1", **kw)
  with pytest.raises(ValueError, match="overshoot.*-0.1"):
    deepfool(fn, x, y, overshoot=-0.1, **kw)
  with pytest.raises(ValueError, match="max_iterations.*0"):
    deepfool(fn, x, y, max_iterations=0, **kw)
  with pytest.raises(ValueError, match="outside bounds"):
    deepfool(fn, x + 1.0, y, **kw)
  with pytest.raises(ValueError, match=r"y must have shape \[2\]"):
    deepfool(fn, x, y[:1], **kw)
  with pytest.raises(ValueError, match="label 7"):
    deepfool(fn, x, np.array([0, 7], np.int32), **kw)
  with pytest.raises(ValueError, match="bounds"):
    deepfool(fn, x, y, bounds=(1.0, 0.0))


def _mlp_problem(n=16, d=20, hidden=32, k=5):
  """A tanh MLP (curved boundaries: examples need 0 to ~35 DeepFool steps) on points in
  [0.2, 0.8]^d, labelled by its predictions except the first (already misclassified)."""
  rng = np.random.default_rng(0)
  W1 = rng.normal(size=(d, hidden)).astype(np.float32)
  W2 = rng.normal(size=(hidden, k)).astype(np.float32)
  fn = lambda z: jnp.tanh(z @ W1 - 5) @ W2
  x = rng.uniform(0.2, 0.8, size=(n, d)).astype(np.float32)
  y = np.argmax(np.asarray(fn(x)), -1).astype(np.int32)
  y[0] = (y[0] + 1) % k
  return fn, x, y


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_host_and_device_loops_agree(norm):
  """loop="host" (the step jitted alone, driven from Python) and loop="device" (one while_loop)
  run the same iteration body: identical adversarials and success, also where max_iterations
  stops some examples early, and with chunking. The host step compiles once, not per step."""
  fn, x, y = _mlp_problem()
  kw = dict(bounds=(0.0, 1.0), norm=norm, overshoot=0.02)
  results = {}
  for extra in (dict(max_iterations=3), dict(max_iterations=50), dict(batch_size=5)):
    key = tuple(extra.items())
    results[key] = host = deepfool(fn, x, y, loop="host", **kw, **extra)
    device = deepfool(fn, x, y, loop="device", **kw, **extra)
    np.testing.assert_array_equal(host.adversarial, device.adversarial, err_msg=str(extra))
    np.testing.assert_array_equal(host.success, device.success, err_msg=str(extra))
    assert bool(host.success[0]) and float(host.distortion[norm][0]) == 0.0  # no step taken
  full = results[(("max_iterations", 50),)]
  assert np.all(full.success)
  if norm == "linf":  # one example needs more than 3 steps
    assert not np.all(results[(("max_iterations", 3),)].success)
  default = deepfool(fn, x, y, **kw)  # CPU: "host", accelerators: "device"; the same either way
  np.testing.assert_array_equal(default.adversarial, full.adversarial)
  # traces of a fresh function: as many for up to 50 steps as for one
  counts = []
  for max_iterations in (1, 50):
    traces = []
    counted = lambda z, traces=traces: traces.append(z.shape) or fn(z)
    deepfool(counted, x, y, loop="host", max_iterations=max_iterations, **kw)
    counts.append(len(traces))
  assert counts[0] == counts[1], counts
  for bad in ("cpu", "Host", 1):
    with pytest.raises(ValueError, match=f"loop {bad!r}"):
      deepfool(fn, x, y, loop=bad, **kw)


@pytest.mark.parametrize("loop", ["host", "device"])
def test_deterministic_chunk_independent_and_compiled_once(loop):
  traces = []
  fn0, _, _, x, y = _affine_problem(n=7)

  def fn(z):
    traces.append(z.shape)
    return fn0(z)

  kw = dict(bounds=(0.0, 1.0), norm="l2", candidates=3, loop=loop)
  a = deepfool(fn, x, y, **kw)
  count = len(traces)
  b = deepfool(fn, x, y, **kw)
  c = deepfool(fn, x, y, overshoot=0.1, max_iterations=7, **kw)  # traced scalars: no recompile
  assert len(traces) == count, traces[count:]
  np.testing.assert_array_equal(a.adversarial, b.adversarial)
  assert float(np.max(c.distortion["l2"])) > float(np.max(a.distortion["l2"]))
  chunked = deepfool(fn, x, y, batch_size=3, **kw)  # chunks of 3, the last one padded
  count = len(traces)
  deepfool(fn, x[:6], y[:6], batch_size=3, **kw)
  assert len(traces) == count  # same chunk shape
  np.testing.assert_allclose(chunked.adversarial, a.adversarial, atol=1e-6)
  np.testing.assert_array_equal(chunked.success, a.success)


@pytest.mark.xdist_group(name="quickstart")
def test_matches_foolbox_on_mnist_cnn(quickstart_natural):
  """Same algorithm as Foolbox's DeepFool (logit differences, top-k clean candidates, overshoot
  on the running total, clipping): the same images are fooled and the distortions agree. L2
  with all 10 classes (our default), L-inf with the top 4 (the candidates path)."""
  import foolbox as fb
  model, _, test = quickstart_natural
  fn = as_logits_fn(model)
  correct = np.flatnonzero(np.argmax(np.asarray(fn(test.images[:64])), -1)
                           == test.labels[:64])[:50]  # misclassified: nothing to compare
  x, y = test.images[correct], test.labels[correct]
  fmodel = fb.JAXModel(fn, bounds=(0, 1))
  # (ours, Foolbox's) candidates: None = all 10 classes
  for norm, attack, ord_, candidates in (("l2", fb.attacks.L2DeepFoolAttack, 2, (None, 10)),
                                         ("linf", fb.attacks.LinfDeepFoolAttack, np.inf, (4, 4))):
    ours = deepfool(fn, x, y, bounds=(0.0, 1.0), norm=norm, overshoot=0.02, max_iterations=50,
                    candidates=candidates[0])
    _, theirs, ok = attack(steps=50, candidates=candidates[1], overshoot=0.02)(
        fmodel, jnp.asarray(x), jnp.asarray(y), epsilons=None)
    ok, success = np.asarray(ok), np.asarray(ours.success)
    d_ours = np.asarray(ours.distortion[norm])
    d_theirs = np.linalg.norm((np.asarray(theirs) - x).reshape(len(x), -1), ord=ord_, axis=1)
    both = ok & success
    ratio = d_ours[both] / d_theirs[both]
    print(f"DeepFool-{norm} on {len(x)} images: success ours {success.sum()}, foolbox "
          f"{ok.sum()}; median ours {np.median(d_ours[both]):.4f}, foolbox "
          f"{np.median(d_theirs[both]):.4f}; {np.mean(np.abs(ratio - 1) < 1e-3):.2f} within 0.1%")
    # Foolbox runs the model eagerly with one gradient per class, we jit one vmapped backward
    # pass: rounding differs, which could flip an image that lands on a boundary (measured on
    # 100 images: no disagreement, every distortion equal to 0.1%)
    assert np.sum(ok != success) <= 1, (ok, success)
    assert np.mean(success) > 0.9
    assert abs(np.median(d_ours[both]) / np.median(d_theirs[both]) - 1) < 0.01
    assert np.mean(np.abs(ratio - 1) < 0.01) > 0.9, ratio
