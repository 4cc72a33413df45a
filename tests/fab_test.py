"""Tests of advbound/attacks/fab.py: the projections against the reference's (pyautoattack) and
against LP / QP solutions; FAB's trajectory on affine classifiers in closed form; FAB-T and FAB
against the reference on a small trained CNN; batch independence; 8 devices equal 1."""

import contextlib
import textwrap

import jax
import numpy as np
import pytest
import scipy.optimize
import torch

from advbound import data, models
from advbound.attacks.fab import fab, project_l2, project_linf
from tests import eight_devices

ref_proj = pytest.importorskip("pyautoattack.fab_projections")
ref_fab = pytest.importorskip("pyautoattack.fab_pt")

_OURS = {"linf": jax.jit(project_linf), "l2": jax.jit(project_l2)}


def _hyperplanes(rng, m, d, low=0.0, high=1.0):
  """m random problems in [low, high]^d: points [m, d] (some coordinates on the box), normals
  [m, d] (some zero), offsets [m] from just beside the point to far beyond the box."""
  t = rng.uniform(low, high, (m, d))
  t[rng.uniform(size=t.shape) < 0.1] = low
  t[rng.uniform(size=t.shape) < 0.1] = high
  w = rng.normal(size=(m, d))
  w[rng.uniform(size=w.shape) < 0.05] = 0
  scale = rng.choice([0.003, 0.03, 0.1, 0.3, 1.0, 3.0], size=m) * (high - low)
  b = (t * w).sum(1) + scale * rng.normal(size=m) * np.abs(w).sum(1)
  return t.astype(np.float32), w.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("dim", [1, 3, 16, 784])
def test_projections_equal_the_references(norm, dim):
  t, w, b = _hyperplanes(np.random.default_rng(dim), 300, dim)
  theirs = {"linf": ref_proj.projection_linf, "l2": ref_proj.projection_l2}[norm]
  expected = theirs(torch.tensor(t), torch.tensor(w), torch.tensor(b)).numpy()
  got = np.asarray(_OURS[norm](t, w, b))
  np.testing.assert_allclose(got, expected, atol=1e-4 if norm == "l2" else 2e-6)
  # the three cases occur: reached before the first breakpoint, after some, not at all
  lhs = np.sum(w * (t + got), 1)
  reached = np.abs(lhs - b) <= 1e-4 * np.abs(w).sum(1)
  assert 0 < reached.sum() < len(b)
  at_box = np.sum((np.abs(got) > 0) & ((t + got <= 1e-6) | (t + got >= 1 - 1e-6)), 1) > 0
  if dim > 1:
    assert np.sum(reached & at_box) > 0 and np.sum(reached & ~at_box) > 0


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (-1.0, 2.5)])
def test_projections_solve_the_lp_and_qp(bounds):
  low, high = bounds
  rng = np.random.default_rng(1)
  t, w, _ = _hyperplanes(rng, 40, 5, low, high)
  z = rng.uniform(low, high, t.shape).astype(np.float32)  # a point of the box on each plane
  b = np.sum(w * z, 1)
  linf = np.asarray(_OURS['linf'](t, w, b, low, high))
  l2 = np.asarray(_OURS['l2'](t, w, b, low, high))
  for m in range(len(b)):
    if not np.any(w[m]):
      continue
    for d in (linf[m], l2[m]):  # on the plane, inside the box
      assert abs(np.dot(w[m], t[m] + d) - b[m]) < 1e-4 * (1 + np.abs(w[m]).sum())
      assert np.all(t[m] + d >= low - 1e-6) and np.all(t[m] + d <= high + 1e-6)
    # L-inf: min lam s.t. |d_i| <= lam, <w, d> = b - <w, t>, low <= t + d <= high
    n = t.shape[1]
    eye = np.eye(n)
    lp = scipy.optimize.linprog(
        np.r_[np.zeros(n), 1.0],
        A_ub=np.block([[eye, -np.ones((n, 1))], [-eye, -np.ones((n, 1))]]), b_ub=np.zeros(2 * n),
        A_eq=np.r_[w[m], 0.0][None].astype(np.float64), b_eq=[b[m] - np.dot(w[m], t[m])],
        bounds=[(low - ti, high - ti) for ti in t[m]] + [(0, None)], method="highs")
    assert lp.status == 0
    np.testing.assert_allclose(np.abs(linf[m]).max(), lp.x[-1], rtol=1e-4, atol=1e-6)
    # L2: min |d|^2 under the same constraints (unique minimiser)
    qp = scipy.optimize.minimize(
        lambda d: d @ d, np.zeros(n), jac=lambda d: 2 * d, method="SLSQP",
        bounds=[(low - ti, high - ti) for ti in t[m]],
        constraints=[{"type": "eq", "fun": lambda d, m=m: np.dot(w[m], t[m] + d) - b[m],
                      "jac": lambda d, m=m: w[m].astype(np.float64)}],
        options={"ftol": 1e-14, "maxiter": 500})
    assert qp.success, qp.message
    np.testing.assert_allclose(l2[m], qp.x, atol=2e-4)


def test_unreachable_plane_moves_to_the_corner():
  t = np.full((1, 3), 0.5, np.float32)
  w = np.array([[1.0, -2.0, 0.0]], np.float32)
  b = np.array([10.0], np.float32)  # <w, z> <= 1 on the box: out of reach
  np.testing.assert_allclose(np.asarray(_OURS['linf'](t, w, b, 0.0, 1.0)), [[0.5, -0.5, 0.0]])
  np.testing.assert_allclose(np.asarray(_OURS['l2'](t, w, b, 0.0, 1.0)), [[0.5, -0.5, 0.0]])


# --- FAB on affine classifiers ------------------------------------------------------------


def _affine_problem(seed=0, n=60, d=20, k=5):
  """A k-class affine model and points x in [0.45, 0.55]^d whose boundaries lie 0.005 .. 0.3
  away in L-inf (the box (-1, 2) stays inactive); returns (fn, W, b, x, y = the predictions)."""
  rng = np.random.default_rng(seed)
  W = rng.normal(size=(k, d)).astype(np.float32)
  center = np.full(d, 0.5, np.float32)
  b = (-center @ W.T + 0.3 * rng.normal(size=k)).astype(np.float32)
  x = (center + rng.uniform(-0.05, 0.05, size=(n, d))).astype(np.float32)
  y = np.argmax(x @ W.T + b, -1).astype(np.int32)
  dist = np.min(_distances(W, b, x, y, 1), 1)
  keep = (dist > 0.005) & (dist < 0.3)
  return lambda z: z @ W.T + b, W, b, x[keep], y[keep]


def _distances(W, b, x, y, q):
  """[N, K] |f_k - f_y| / |w_k - w_y|_q (q the dual norm) at x; inf at k = y."""
  f = x.astype(np.float64) @ W.T + b
  dw = W[None].astype(np.float64) - W[y][:, None]
  norms = np.linalg.norm(dw, ord=q, axis=-1)
  dist = np.abs(f - f[np.arange(len(x)), y][:, None]) / np.where(norms > 0, norms, 1)
  dist[np.arange(len(x)), y] = np.inf
  return dist


def _on_a_line(threshold, num_steps=100, alpha_max=0.1, eta=1.05, beta=0.9):
  """FAB's iterates on an affine model, in closed form: they stay on the segment x + s (p - x)
  from x to its projection p onto the attacked plane (s = 1 there; both projections point
  along it). Returns the smallest adversarial s found (adversarial: s > threshold)."""
  s, best = 0.0, np.inf
  for _ in range(num_steps):
    a1 = max(abs(1 - s), 1e-8)
    alpha = min(a1 / (a1 + 1.0), alpha_max)
    s = (1 - alpha) * (s + eta * (1 - s)) + alpha * eta
    if s > threshold:
      best, s = min(best, s), beta * s
  return best


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_affine_untargeted_finds_the_minimal_perturbation(norm):
  fn, W, b, x, y = _affine_problem()
  minimal = np.min(_distances(W, b, x, y, 1 if norm == "linf" else 2), 1)
  r = fab(fn, jax.random.key(0), x, y, epsilon=1.0, bounds=(-1.0, 2.0), norm=norm)
  found = np.asarray(r.distortion[norm])
  assert np.asarray(r.success).all() and len(x) >= 15
  ratio = found / minimal
  assert np.all(ratio >= 1 - 1e-5) and np.all(ratio <= 1.006)  # 0.5% above the minimum
  np.testing.assert_allclose(ratio, _on_a_line(1.0), rtol=2e-4)  # FAB's own closed form
  logits = np.asarray(fn(np.asarray(r.adversarial)))
  assert np.all(np.argmax(logits, -1) != y)
  # epsilon just below the smallest minimum: nothing (no smaller adversarial exists)
  below = fab(fn, jax.random.key(0), x, y, epsilon=0.999 * float(minimal.min()),
              bounds=(-1.0, 2.0), norm=norm)
  assert not np.asarray(below.success).any()


@pytest.mark.parametrize("norm,targeted", [("linf", True), ("l2", False)])
def test_host_and_device_loops_agree(norm, targeted):
  """loop="host" (one step jitted alone, the CPU default) and loop="device" (one compiled
  program) run the same steps, random restarts included."""
  fn, W, b, x, y = _affine_problem(seed=2)
  minimal = np.min(_distances(W, b, x, y, 1 if norm == "linf" else 2), 1)
  kw = dict(epsilon=float(np.median(minimal)), bounds=(-1.0, 2.0), norm=norm,
            targeted=targeted, target_classes=3, restarts=2, num_steps=15, batch_size=16)
  host = fab(fn, jax.random.key(4), x, y, loop="host", **kw)
  device = fab(fn, jax.random.key(4), x, y, loop="device", **kw)
  np.testing.assert_array_equal(np.asarray(host.success), np.asarray(device.success))
  assert 0 < np.asarray(host.success).sum() < len(y)
  np.testing.assert_allclose(np.asarray(host.adversarial), np.asarray(device.adversarial),
                             atol=1e-5)
  with pytest.raises(ValueError, match="unknown loop 'x'"):
    fab(fn, jax.random.key(4), x, y, loop="x", **kw)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_affine_targeted_attacks_the_second_class(norm):
  fn, W, b, x, y = _affine_problem(seed=1)
  f = x @ W.T + b
  target = np.argsort(f, -1)[:, -2]
  rows = np.arange(len(x))
  dist_t = _distances(W, b, x, y, 1 if norm == "linf" else 2)[rows, target]
  # the minimal step to the target's plane, and along it the first class that overtakes y
  v = W[target] - W[y]
  if norm == "linf":
    step = np.sign(v) * dist_t[:, None]
  else:
    step = v / np.linalg.norm(v, axis=-1, keepdims=True) * dist_t[:, None]
  margin0 = f - f[rows, y][:, None]                       # < 0 off y
  slope = step @ W.T - (step * W[y]).sum(-1, keepdims=True)
  cross = np.where(slope > 0, -margin0 / np.where(slope > 0, slope, 1), np.inf)
  cross[rows, y] = np.inf
  first = cross.min(1)
  np.testing.assert_allclose(cross[rows, target], 1.0, rtol=1e-4)
  r = fab(fn, jax.random.key(0), x, y, epsilon=1.0, bounds=(-1.0, 2.0), norm=norm,
          targeted=True, target_classes=1)
  expected = np.array([_on_a_line(s) for s in first]) * dist_t
  assert np.asarray(r.success).all()
  np.testing.assert_allclose(np.asarray(r.distortion[norm]), expected, rtol=1e-3)
  # (both cases occur: in L-inf 10 examples cross another class's boundary first)
  assert norm == "l2" or np.sum(first < 1 - 1e-4) > 0


# --- against the reference on a small trained CNN -----------------------------------------


@contextlib.contextmanager
def _one_torch_thread():
  """torch on one thread (several spin against each other on a busy 2-core machine)."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  try:
    yield
  finally:
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cnn():
  """A small torch CNN trained briefly on MNIST (embedded split), the same weights for us, and
  200 test inputs; clean accuracy ~90%."""
  torch.manual_seed(0)
  train = data.load("mnist", source="embedded", split="train")
  test = data.load("mnist", source="embedded", split="test")
  net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 5, stride=2), torch.nn.ReLU(),
                            torch.nn.Conv2d(8, 16, 5, stride=2), torch.nn.ReLU(),
                            torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 10))
  xt = torch.tensor(train.images).permute(0, 3, 1, 2)
  yt = torch.tensor(train.labels).long()
  opt = torch.optim.Adam(net.parameters(), 3e-3)
  gen = torch.Generator().manual_seed(0)
  with _one_torch_thread():
    for _ in range(150):
      idx = torch.randint(0, len(xt), (64,), generator=gen)
      loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
      opt.zero_grad()
      loss.backward()
      opt.step()
  net.eval()
  sel = np.random.default_rng(0).choice(len(test.images), 200, replace=False)
  x, y = test.images[sel], test.labels[sel].astype(np.int32)
  fn = models.as_logits_fn(models.from_torch(net, input_shape=(1, 28, 28)))
  with torch.no_grad():
    clean = net(torch.tensor(x).permute(0, 3, 1, 2)).numpy()
  np.testing.assert_allclose(np.asarray(fn(x)), clean, atol=1e-4)
  assert (clean.argmax(1) == y).mean() > 0.85
  return net, fn, x, y


def _reference(net, x, y, *, norm, eps, **kwargs):
  """The reference's adversarials (numpy NHWC) and robustness (bool [N])."""
  torch.manual_seed(0)
  attack = ref_fab.FABAttack_PT(net, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, seed=0,
                                **kwargs)
  xt = torch.tensor(x).permute(0, 3, 1, 2)
  with _one_torch_thread():
    adv = attack.perturb(xt, torch.tensor(y).long())
    with torch.no_grad():
      robust = net(adv).argmax(1).numpy() == y
  return adv.permute(0, 2, 3, 1).numpy(), robust


def _norms(delta, norm):
  flat = delta.reshape(len(delta), -1)
  return np.abs(flat).max(1) if norm == "linf" else np.linalg.norm(flat, axis=1)


def test_fab_t_matches_the_reference_on_a_cnn(cnn):
  # FAB-T as AutoAttack runs it (targets 2 .. 4 here, 20 steps: shortened for the test's time);
  # without restarts FAB-T is deterministic, so the two agree example by example up to float
  # rounding (measured: the same 91 of 200 robust, norms within 2e-4, median 1e-6)
  net, fn, x, y = cnn
  kw = dict(norm="linf", eps=0.1)
  adv_ref, robust_ref = _reference(net, x, y, n_iter=20, n_restarts=1, targeted=True,
                                   n_target_classes=3, **kw)
  r = fab(fn, jax.random.key(0), x, y, epsilon=0.1, bounds=(0.0, 1.0), norm="linf",
          targeted=True, target_classes=3, num_steps=20)
  robust = ~np.asarray(r.success)
  assert 20 <= robust.sum() <= 150  # an informative epsilon
  assert abs(int(robust.sum()) - int(robust_ref.sum())) <= 2
  assert np.mean(robust == robust_ref) >= 0.98
  broken = ~robust & ~robust_ref & (np.asarray(r.distortion["linf"]) > 0)
  ours, theirs = np.asarray(r.distortion["linf"])[broken], _norms(adv_ref - x, "linf")[broken]
  assert np.all(ours <= 0.1 + 1e-6)
  assert abs(np.median(ours) / np.median(theirs) - 1) < 0.01
  assert np.mean(np.abs(ours / theirs - 1) < 1e-3) >= 0.95


def test_fab_l2_matches_the_reference_on_a_cnn(cnn):
  # untargeted FAB (the closest of all K linearised boundaries), L2, 10 steps, 100 inputs;
  # deterministic without restarts (measured: the same 52 of 100 robust, norms within 1e-6)
  net, fn, x, y = cnn
  x, y = x[:100], y[:100]
  adv_ref, robust_ref = _reference(net, x, y, norm="l2", eps=1.0, n_iter=10, n_restarts=1)
  r = fab(fn, jax.random.key(0), x, y, epsilon=1.0, bounds=(0.0, 1.0), norm="l2",
          num_steps=10)
  robust = ~np.asarray(r.success)
  assert 10 <= robust.sum() <= 80
  assert np.mean(robust == robust_ref) >= 0.98
  broken = ~robust & ~robust_ref & (np.asarray(r.distortion["l2"]) > 0)
  ours, theirs = np.asarray(r.distortion["l2"])[broken], _norms(adv_ref - x, "l2")[broken]
  assert np.all(ours <= 1.0 + 1e-5)
  assert abs(np.median(ours) / np.median(theirs) - 1) < 0.01
  assert np.mean(np.abs(ours / theirs - 1) < 1e-3) >= 0.95


def test_batch_independent_and_ids_pick_the_random_streams(cnn):
  # two restarts: the second from a random start drawn from (key, id, run)
  _, fn, x, y = cnn
  x, y = x[:10], y[:10]
  kw = dict(epsilon=0.08, bounds=(0.0, 1.0), norm="linf", restarts=2, num_steps=5)
  whole = fab(fn, jax.random.key(3), x, y, **kw)
  chunks = fab(fn, jax.random.key(3), x, y, batch_size=5, **kw)
  success = np.asarray(whole.success)
  assert 0 < success.sum() < 10
  np.testing.assert_array_equal(np.asarray(chunks.success), success)
  np.testing.assert_allclose(np.asarray(chunks.adversarial), np.asarray(whole.adversarial),
                             atol=1e-6)
  # an example's result is its own: among other examples, at another place, with its id
  pick = [7, 0, 1, 2, 3]
  again = fab(fn, jax.random.key(3), x[pick], y[pick], ids=pick, **kw)
  np.testing.assert_allclose(np.asarray(again.adversarial), np.asarray(whole.adversarial)[pick],
                             atol=1e-6)


def test_bad_arguments_are_named():
  fn, _, _, x, y = _affine_problem()
  key = jax.random.key(0)
  kw = dict(epsilon=0.1, bounds=(-1.0, 2.0))
  with pytest.raises(ValueError, match="norm"):
    fab(fn, key, x, y, norm="l1", **kw)
  with pytest.raises(ValueError, match="target_classes"):
    fab(fn, key, x, y, targeted=True, target_classes=5, **kw)
  with pytest.raises(ValueError, match="restarts"):
    fab(fn, key, x, y, restarts=0, **kw)
  with pytest.raises(ValueError, match="outside bounds"):
    fab(fn, key, x + 5, y, **kw)
  with pytest.raises(ValueError, match="y holds label"):
    fab(fn, key, x, y + 10, **kw)
  with pytest.raises(ValueError, match="ids"):
    fab(fn, key, x, y, ids=[0], **kw)


_SHARDED = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from advbound.attacks.fab import fab
    from advbound.runtime import sharding

    assert jax.device_count() == 8
    rng = np.random.default_rng(0)
    w1 = jnp.asarray(rng.normal(size=(36, 16)), jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(16, 5)), jnp.float32)
    fn = lambda z: jnp.tanh(z.reshape(z.shape[0], -1) @ w1) @ w2
    x = rng.uniform(0, 1, (13, 6, 6, 1)).astype(np.float32)
    y = np.argmax(np.asarray(fn(x)), -1).astype(np.int32)
    key = jax.random.key(0)

    def run():
      a = fab(fn, key, x, y, epsilon=0.05, bounds=(0.0, 1.0), targeted=True, target_classes=3,
              num_steps=10, batch_size=8)
      b = fab(fn, key, x, y, epsilon=0.2, bounds=(0.0, 1.0), norm="l2", restarts=2,
              num_steps=10, batch_size=8)
      return [np.asarray(v) for r in (a, b) for v in (r.success, r.adversarial)]

    many = run()
    with sharding.use_devices(jax.devices()[:1]):
      one = run()
    for m, o in zip(many, one):
      np.testing.assert_allclose(m, o, atol=1e-6)
    assert 0 < many[0].sum() < 13 and 0 < many[2].sum() < 13
    print("SHARDED OK", many[0].sum(), many[2].sum())
""")


def test_sharded_over_8_devices_equals_one_device():
  eight_devices.assert_script_passes(_SHARDED)
