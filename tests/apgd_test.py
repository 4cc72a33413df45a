"""Tests of advbound/attacks/apgd.py: the DLR losses and the step-size schedule against the
reference (pyautoattack) on the same model from the same start, robust accuracy of APGD-CE and
APGD-T against the reference on a small trained CNN, closed forms on affine models (in the
units of bounds (0, 255)), at least as strong as PGD-20, EOT on a noisy model, batch and device
independence, argument errors."""

import functools
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advbound.attacks.apgd import apgd, apgd_targeted, checkpoints, dlr_loss, targeted_dlr_loss
from advbound.attacks.pgd import pgd
from tests import eight_devices

EPS = 0.08  # L-inf on MNIST in [0, 1]: about half of the CNN's test points stay robust


def _reference():
  return pytest.importorskip("pyautoattack.autopgd_base")


# ------------------------------------------------------------------------------ the DLR losses

def test_dlr_losses_equal_the_reference():
  ref = _reference()
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(0)
  n, k = 256, 10
  cases = [rng.normal(size=(n, k)) * 3,
           rng.integers(0, 4, size=(n, k)).astype(float)]  # many ties, y often among the top
  y = rng.integers(0, k, n)
  target = (y + rng.integers(1, k, n)) % k
  untargeted = ref.APGDAttack(None, eps=0.1, loss="dlr")
  targeted = ref.APGDAttack_targeted(None, eps=0.1)
  for z in cases:
    z = z.astype(np.float32)
    zt, yt = torch.tensor(z), torch.tensor(y)
    theirs = untargeted.dlr_loss(zt, yt).numpy()
    targeted.y_target = torch.tensor(target)
    theirs_t = targeted.dlr_loss_targeted(zt, yt).numpy()
    ours = np.asarray(dlr_loss(jnp.asarray(z), jnp.asarray(y)))
    ours_t = np.asarray(targeted_dlr_loss(jnp.asarray(z), jnp.asarray(y), jnp.asarray(target)))
    finite = np.abs(theirs) < 1e6  # a zero denominator divides by 1e-12 in both
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours[~finite], theirs[~finite], rtol=1e-5)
    finite = np.abs(theirs_t) < 1e6
    np.testing.assert_allclose(ours_t[finite], theirs_t[finite], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours_t[~finite], theirs_t[~finite], rtol=1e-5)
  # by hand: z = (3, 1, 0, -1), y = 0: -(3 - 1) / (3 - 0); y = 2: -(0 - 3) / 3
  z = jnp.array([[3.0, 1.0, 0.0, -1.0]] * 2)
  np.testing.assert_allclose(dlr_loss(z, jnp.array([0, 2])), [-2 / 3, 1.0], rtol=1e-6)
  # targeted, y = 0, t = 1: -(3 - 1) / (3 - (0 - 1) / 2)
  np.testing.assert_allclose(targeted_dlr_loss(z[:1], jnp.array([0]), jnp.array([1])),
                             [-2 / 3.5], rtol=1e-6)


def test_checkpoints_are_the_reference_constants():
  ref = _reference()
  for n in (1, 5, 10, 25, 33, 100, 1000):
    a = ref.APGDAttack(None, eps=0.1, n_iter=n)
    assert checkpoints(n) == (a.n_iter_2, a.n_iter_min, a.size_decr)


# -------------------------------------------------------------- a small CNN and the reference

@pytest.fixture(scope="module")
def cnn():
  """A torch CNN trained for one epoch on the embedded MNIST training split, the same weights
  as a JAX logits_fn, and 200 test points of every class."""
  torch = pytest.importorskip("torch")
  from torch import nn
  from advbound import data, models
  torch.manual_seed(0)
  train = data.load("mnist", source="embedded", split="train")
  test = data.load("mnist", source="embedded", split="test")
  net = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                      nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
  images = torch.tensor(train.images.transpose(0, 3, 1, 2))
  labels = torch.tensor(train.labels).long()
  opt = torch.optim.Adam(net.parameters(), 1e-2)
  perm = torch.randperm(len(images))
  for i in range(0, len(images), 100):
    idx = perm[i:i + 100]
    opt.zero_grad()
    nn.functional.cross_entropy(net(images[idx]), labels[idx]).backward()
    opt.step()
  net.eval()
  sel = np.random.default_rng(0).choice(len(test.labels), 200, replace=False)
  x, y = test.images[sel], test.labels[sel].astype(np.int32)
  fn = models.as_logits_fn(models.from_torch(net, input_shape=(1, 28, 28)))
  with torch.no_grad():
    theirs = net(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
  np.testing.assert_allclose(np.asarray(fn(x)), theirs, atol=1e-4)
  assert np.mean(theirs.argmax(1) == y) > 0.85
  return net, fn, x, y


def _nchw(a):
  import torch  # pylint: disable=g-import-not-at-top
  return torch.tensor(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))


def _reference_run(net, x, y, start, *, epsilon, norm, num_steps, loss="ce"):
  """The reference's attack_single_run from our start point; returns its step size at every
  iteration [T, N] (read from its frame when the model is called) and its loss_steps [T, N]."""
  import torch  # pylint: disable=g-import-not-at-top
  ref = _reference()
  record = {"steps": []}

  class Spy(torch.nn.Module):
    def __init__(self, m):
      super().__init__()
      self.m = m

    def forward(self, v):
      f = sys._getframe(0)  # pylint: disable=protected-access
      while f is not None and f.f_code.co_name != "attack_single_run":
        f = f.f_back
      if f is not None and "step_size" in f.f_locals:  # absent at the start point's call
        record["steps"].append(f.f_locals["step_size"].flatten().clone())
      return self.m(v)

  def profile(frame, event, arg):
    del arg
    if event == "return" and frame.f_code.co_name == "attack_single_run":
      record["loss"] = frame.f_locals["loss_steps"].clone()

  attack = ref.APGDAttack(Spy(net), eps=epsilon, norm={"linf": "Linf", "l2": "L2"}[norm],
                          n_iter=num_steps, loss=loss, seed=0, device="cpu")
  attack.init_hyperparam(_nchw(x))
  sys.setprofile(profile)
  try:
    attack.attack_single_run(_nchw(x), torch.tensor(y).long(), x_init=_nchw(start))
  finally:
    sys.setprofile(None)
  return torch.stack(record["steps"]).numpy(), record["loss"].numpy()


@pytest.fixture(scope="module")
def ce_linf(cnn):
  """APGD-CE (L-inf, 25 steps, 2 restarts) on the 200 points, with the trace of its first
  run."""
  _, fn, x, y = cnn
  return apgd(fn, jax.random.key(0), x, y, epsilon=EPS, bounds=(0.0, 1.0), num_steps=25,
              restarts=2, return_trace=True)


def _compare_schedules(ours, theirs, loss_ours, loss_theirs, *, same_through, min_resolved):
  """Our step size at every iteration [T, N] is the reference's for every example whose loss
  stays above 1e-2, and for every example up to iteration `same_through`; the losses agree.

  Below ~1e-2 the float32 cross-entropy moves by single ulps of 1 (1.2e-7) between iterations,
  and torch and XLA round exp and the sum differently: there "the loss rose" is a coin flip
  that may send an example down the other branch late in the run (measured: all 10 of 200
  examples that differ at 25 steps, both of 24 at 100 steps, have losses < 5e-3)."""
  assert ours.shape == theirs.shape
  np.testing.assert_array_equal(ours[:same_through], theirs[:same_through])
  resolved = loss_theirs.min(0) > 1e-2
  assert resolved.sum() >= min_resolved, (resolved.sum(), len(resolved))
  np.testing.assert_array_equal(ours[:, resolved], theirs[:, resolved])
  np.testing.assert_allclose(loss_ours[:, resolved], loss_theirs[:, resolved], rtol=1e-3)
  # the decisions differ between examples and checkpoints (both branches are exercised)
  halvings = np.log2(theirs[0, resolved] / theirs[-1, resolved])
  assert len(np.unique(halvings)) >= 3, np.unique(halvings)


def test_step_size_schedule_equals_the_reference_linf(cnn, ce_linf):
  # 25 steps: checkpoints after windows 5, 4, 3, 2, 1, 1, ... (size_decr 1, n_iter_min 1)
  net, _, x, y = cnn
  _, trace = ce_linf
  steps, losses = _reference_run(net, x, y, trace["start"], epsilon=EPS, norm="linf",
                                 num_steps=25)
  _compare_schedules(np.asarray(trace["step_size"]), steps, np.asarray(trace["loss"]), losses,
                     same_through=12, min_resolved=150)


def test_step_size_schedule_equals_the_reference_l2(cnn):
  # 100 steps: AutoAttack's schedule (checkpoints at iterations 22, 41, 57, 70, 80, 87, 93, 99)
  net, fn, x, y = cnn
  x, y = x[:24], y[:24]
  _, trace = apgd(fn, jax.random.key(1), x, y, epsilon=1.0, bounds=(0.0, 1.0), norm="l2",
                  num_steps=100, return_trace=True)
  steps, losses = _reference_run(net, x, y, trace["start"], epsilon=1.0, norm="l2",
                                 num_steps=100)
  _compare_schedules(np.asarray(trace["step_size"]), steps, np.asarray(trace["loss"]), losses,
                     same_through=58, min_resolved=16)
  # the start: L2 norm eps (before clipping to bounds, which only shortens it)
  size = np.linalg.norm((np.asarray(trace["start"]) - x).reshape(len(x), -1), axis=1)
  assert np.all(size <= 1.0 + 1e-5) and np.all(size > 0.5)


def test_robust_accuracy_equals_the_reference(cnn, ce_linf):
  """APGD-CE (2 restarts) and APGD-T (2 targets), 25 steps, on 200 points. The reference's
  random starts differ from ours, so the outcomes may differ where they depend on the start:
  the counts must agree within 4 and the per-point outcomes on all but 6 (measured: equal
  counts, no point differs)."""
  torch = pytest.importorskip("torch")
  ref = _reference()
  net, fn, x, y = cnn
  ours_ce, _ = ce_linf
  ours_t = apgd_targeted(fn, jax.random.key(0), x, y, epsilon=EPS, bounds=(0.0, 1.0),
                         num_steps=25, target_classes=2)
  yt = torch.tensor(y).long()
  adv_ce = ref.APGDAttack(net, eps=EPS, n_iter=25, n_restarts=2, seed=0,
                          device="cpu").perturb(_nchw(x), yt)
  adv_t = ref.APGDAttack_targeted(net, eps=EPS, n_iter=25, seed=0, device="cpu",
                                  n_target_classes=2).perturb(_nchw(x), yt)
  with torch.no_grad():
    broken_ce = net(adv_ce).argmax(1).numpy() != y
    broken_t = net(adv_t).argmax(1).numpy() != y
  for ours, theirs in ((ours_ce, broken_ce), (ours_t, broken_t)):
    ours = np.asarray(ours.success)
    assert 40 < theirs.sum() < 160  # neither attack trivial nor hopeless at this epsilon
    assert abs(int(ours.sum()) - int(theirs.sum())) <= 4, (ours.sum(), theirs.sum())
    assert np.sum(ours != theirs) <= 6
  # our successes are real: misclassified, within epsilon, inside bounds
  for r in (ours_ce, ours_t):
    adv, ok = np.asarray(r.adversarial), np.asarray(r.success)
    assert np.all((np.argmax(np.asarray(fn(adv)), -1) != y) == ok)
    assert np.abs(adv - x).max() <= EPS + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_at_least_as_strong_as_pgd20(cnn, ce_linf):
  _, fn, x, y = cnn
  ours, _ = ce_linf
  adv = pgd(fn, jax.random.key(3), x, y, epsilon=EPS, step_size=EPS / 4, num_steps=20,
            bounds=(0.0, 1.0))
  pgd_broken = np.argmax(np.asarray(fn(adv)), -1) != y
  broken = np.asarray(ours.success)
  assert pgd_broken.sum() > 40
  assert np.sum(pgd_broken & ~broken) <= 2  # slack: points on a knife edge of PGD's start
  assert broken.sum() >= pgd_broken.sum()


# ------------------------------------------------------------------- closed forms (affine)

def _affine_problem(seed=0, n=40, d=20, k=4):
  """A k-class affine model on pixels in (0, 255), boundaries at L-inf / L2 distances up to
  ~3 times the median from points x near 127.5 (the bounds stay inactive)."""
  rng = np.random.default_rng(seed)
  w = (rng.normal(size=(k, d)) / 255).astype(np.float32)
  center = np.full(d, 127.5, np.float32)
  b = (-center @ w.T + 0.3 * rng.normal(size=k)).astype(np.float32)
  x = (center + rng.uniform(-10, 10, size=(n, d))).astype(np.float32)
  fn = lambda z: z @ w.T + b
  y = np.argmax(x @ w.T + b, -1).astype(np.int32)
  return fn, w, b, x, y


def _distance(w, b, x, y, q):
  """Per example, the smallest perturbation in the norm whose dual is q reaching another
  class's boundary: min_l (f_y - f_l) / |w_y - w_l|_q."""
  f = x.astype(np.float64) @ w.T + b
  dw = w[None].astype(np.float64) - w[y][:, None]
  norms = np.linalg.norm(dw, ord=q, axis=-1)
  rows = np.arange(len(x))
  norms[rows, y] = 1.0
  d = (f[rows, y][:, None] - f) / norms
  d[rows, y] = np.inf
  return d.min(-1)


@pytest.mark.parametrize("norm,dual", [("linf", 1), ("l2", 2)])
def test_affine_closed_form(norm, dual):
  """eps = the median distance: every example nearer than eps (by 2%) is broken, none farther
  (APGD-DLR and APGD-T find the nearest boundary's corner / direction exactly)."""
  fn, w, b, x, y = _affine_problem()
  dist = _distance(w, b, x, y, dual)
  eps = float(np.median(dist))
  clear = np.abs(dist / eps - 1) > 0.02
  assert clear.sum() >= 35
  for result in (apgd(fn, jax.random.key(0), x, y, epsilon=eps, bounds=(0.0, 255.0),
                      norm=norm, loss="dlr", num_steps=50),
                 apgd_targeted(fn, jax.random.key(0), x, y, epsilon=eps, bounds=(0.0, 255.0),
                               norm=norm, num_steps=50, target_classes=3)):
    ok = np.asarray(result.success)
    np.testing.assert_array_equal(ok[clear], (dist < eps)[clear])
    assert np.all(np.asarray(result.distortion[norm]) <= eps * (1 + 1e-5))
    assert np.all(np.argmax(fn(np.asarray(result.adversarial)), -1)[ok] != y[ok])


# -------------------------------------------------------------------------- EOT on noise

def _mlp(seed=0, n=128):
  """A random tanh MLP on 6 x 6 x 1 inputs in [0, 1], 10 classes, labels its predictions."""
  rng = np.random.default_rng(seed)
  w1 = jnp.asarray(rng.normal(size=(36, 64)).astype(np.float32))
  w2 = jnp.asarray(rng.normal(size=(64, 10)).astype(np.float32))
  fn = lambda z: jnp.tanh(z.reshape(z.shape[0], -1) @ w1 - w1.sum(0) / 2) @ w2
  x = rng.uniform(0, 1, size=(n, 6, 6, 1)).astype(np.float32)
  return fn, x, np.argmax(np.asarray(fn(x)), -1).astype(np.int32)


def test_eot_on_a_noisy_model():
  """f(clip(x + u)), u ~ U[-0.2, 0.2]^D: EOT over 8 draws per step is at least as strong as
  one draw (measured on 128 points: 103 vs 97 successes, misclassified on 51.6% vs 47.8% of
  32 fresh draws); success is judged on fresh draws; with a model that ignores its key, the
  stochastic path is the deterministic one."""
  fn, x, y = _mlp()

  def noisy(z, key):
    return fn(jnp.clip(z + jax.random.uniform(key, z.shape, z.dtype, -0.2, 0.2), 0.0, 1.0))

  common = dict(epsilon=0.04, bounds=(0.0, 1.0), num_steps=10, stochastic=True)
  one = apgd(noisy, jax.random.key(0), x, y, eot_iter=1, **common)
  eot = apgd(noisy, jax.random.key(0), x, y, eot_iter=8, **common)
  assert np.asarray(eot.success).sum() >= np.asarray(one.success).sum() - 2

  def misclassified_rate(result):  # 32 fresh draws: a lower-noise verdict than one
    keys = jax.random.split(jax.random.key(9), 32)
    return np.mean([np.argmax(np.asarray(noisy(jnp.asarray(result.adversarial), k)), -1) != y
                    for k in keys])
  assert misclassified_rate(eot) >= misclassified_rate(one)
  assert np.abs(np.asarray(eot.adversarial) - x).max() <= 0.04 + 1e-6
  # the stochastic path with a key-free model equals the deterministic path
  kw = dict(epsilon=0.04, bounds=(0.0, 1.0), num_steps=10)
  plain = apgd(fn, jax.random.key(5), x, y, **kw)
  keyless = apgd(lambda z, key: fn(z), jax.random.key(5), x, y, stochastic=True, **kw)
  np.testing.assert_array_equal(np.asarray(plain.success), np.asarray(keyless.success))
  np.testing.assert_allclose(np.asarray(plain.adversarial), np.asarray(keyless.adversarial),
                             atol=1e-6)


# ------------------------------------------------------------------ host and device loops

@pytest.mark.parametrize("targeted,norm,stochastic", [(False, "linf", False),
                                                      (True, "l2", False),
                                                      (False, "linf", True)])
def test_host_and_device_loops_agree(targeted, norm, stochastic):
  """loop="host" (one iteration jitted alone, the CPU default) and loop="device" (one compiled
  program) run the same iteration: same successes, inputs and per-iteration trace."""
  fn, x, y = _mlp(n=48)
  model = fn
  if stochastic:
    model = lambda z, key: fn(jnp.clip(z + jax.random.uniform(key, z.shape, z.dtype, -0.2, 0.2),
                                       0.0, 1.0))
  attack = functools.partial(apgd_targeted, target_classes=3) if targeted else apgd
  kw = dict(epsilon=0.03 if norm == "linf" else 0.08, bounds=(0.0, 1.0), norm=norm,
            num_steps=12, restarts=2, stochastic=stochastic, eot_iter=2, return_trace=True,
            batch_size=32)
  host, host_trace = attack(model, jax.random.key(3), x, y, loop="host", **kw)
  device, device_trace = attack(model, jax.random.key(3), x, y, loop="device", **kw)
  np.testing.assert_array_equal(np.asarray(host.success), np.asarray(device.success))
  assert 0 < np.asarray(host.success).sum() < len(y)
  np.testing.assert_allclose(np.asarray(host.adversarial), np.asarray(device.adversarial),
                             atol=1e-5)
  for name in ("loss", "step_size", "start"):
    np.testing.assert_allclose(host_trace[name], device_trace[name], rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="unknown loop 'gpu'"):
    attack(model, jax.random.key(3), x, y, loop="gpu", **kw)


# ------------------------------------------------------------- batch and device independence

def test_batch_size_and_subsets_do_not_change_results(cnn, ce_linf):
  """Chunks of 64 (the last one padded) give exactly the result of one chunk of 200, though a
  chunk stops restarting once all its examples are broken; a subset attacked alone with its
  indices gets the same random numbers, so the same result."""
  _, fn, x, y = cnn
  whole, _ = ce_linf
  kw = dict(epsilon=EPS, bounds=(0.0, 1.0), num_steps=25, restarts=2, batch_size=64)
  chunked = apgd(fn, jax.random.key(0), x, y, **kw)
  np.testing.assert_array_equal(np.asarray(whole.success), np.asarray(chunked.success))
  np.testing.assert_array_equal(np.asarray(whole.adversarial), np.asarray(chunked.adversarial))
  idx = np.arange(100, 164)
  part = apgd(fn, jax.random.key(0), x[idx], y[idx], ids=idx, **kw)
  np.testing.assert_array_equal(np.asarray(part.adversarial), np.asarray(whole.adversarial)[idx])
  np.testing.assert_array_equal(np.asarray(part.success), np.asarray(whole.success)[idx])


_SHARDED = textwrap.dedent("""
    import jax, numpy as np
    from advbound.attacks.apgd import apgd_targeted
    from advbound.runtime import sharding
    from tests.apgd_test import _mlp

    assert jax.device_count() == 8
    fn, x, y = _mlp(n=13)

    def run():  # APGD-T: two targets, two restarts each, chunks of 8 (the second padded)
      t = apgd_targeted(fn, jax.random.key(0), x, y, epsilon=0.02, bounds=(0.0, 1.0),
                        num_steps=10, target_classes=2, restarts=2, batch_size=8)
      return np.asarray(t.adversarial), np.asarray(t.success)

    many = run()
    with sharding.use_devices(jax.devices()[:1]):
      one = run()
    np.testing.assert_array_equal(many[1], one[1])
    np.testing.assert_allclose(many[0], one[0], atol=1e-6)
    assert 0 < many[1].sum() < 13, many[1]
    print("SHARDED OK", int(many[1].sum()))
""")


def test_8_devices_equal_one_device():
  eight_devices.assert_script_passes(_SHARDED)


# ------------------------------------------------------------------------------------ errors

def test_bad_arguments_are_named():
  fn, _, _, x, y = _affine_problem(n=4)
  kw = dict(epsilon=1.0, bounds=(0.0, 255.0))
  with pytest.raises(ValueError, match="norm"):
    apgd(fn, jax.random.key(0), x, y, norm="l1", **kw)
  with pytest.raises(ValueError, match="loss"):
    apgd(fn, jax.random.key(0), x, y, loss="hinge", **kw)
  with pytest.raises(ValueError, match="rho"):
    apgd(fn, jax.random.key(0), x, y, rho=1.5, **kw)
  with pytest.raises(ValueError, match="num_steps"):
    apgd(fn, jax.random.key(0), x, y, num_steps=0, **kw)
  with pytest.raises(ValueError, match="target_classes"):
    apgd_targeted(fn, jax.random.key(0), x, y, target_classes=4, **kw)  # 4 classes
  with pytest.raises(ValueError, match="outside bounds"):
    apgd(fn, jax.random.key(0), x, y, epsilon=1.0, bounds=(0.0, 1.0))
  two = lambda z: z[:, :2]
  with pytest.raises(ValueError, match="at least 3 classes"):
    apgd(two, jax.random.key(0), x / 255, np.zeros(4, np.int32), epsilon=0.1,
         bounds=(0.0, 1.0), loss="dlr")
