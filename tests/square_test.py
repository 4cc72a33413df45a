"""Tests of advbound/attacks/square.py: the p schedule and the L2 window pattern against the
reference (pyautoattack), robust accuracy against the reference on a small trained CNN, no use
of gradients (a step-function model that PGD cannot attack), closed forms on affine models,
every query inside the budget and the bounds, units of the bounds, batch and device
independence."""

import importlib
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advbound.attacks.pgd import pgd
from advbound.attacks.square import meta_pseudo_gaussian, p_schedule, square, window_sizes
from tests import eight_devices

square_module = importlib.import_module("advbound.attacks.square")


def _reference():
  return pytest.importorskip("pyautoattack.square")


# ---------------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("rescale", [False, True])
def test_p_schedule_equals_the_reference(rescale):
  ref = _reference()
  for p_init in (0.8, 0.3, 0.05):
    for num_queries in (1, 7, 10, 11, 49, 51, 100, 201, 333, 1000, 5000, 9999, 10000, 12345):
      attack = ref.SquareAttack(None, n_queries=num_queries, p_init=p_init,
                                resc_schedule=rescale)
      ours = [p_schedule(i, num_queries, p_init=p_init, rescale=rescale)
              for i in range(num_queries)]
      theirs = [attack.p_selection(i) for i in range(num_queries)]
      assert ours == theirs, (p_init, num_queries)


def test_window_sizes_by_hand():
  # MNIST (28 x 28 x 1), p = 0.8 / 2^j: sqrt(p * 784) = 25.04, 17.71, 12.52, 8.85, 6.26, 4.43,
  # 3.13, 2.21, 1.57, 1.11 at the first iteration of each stage
  first = [0, 11, 51, 201, 501, 1001, 2001, 4001, 6001, 8001]
  linf = window_sizes(10000, (28, 28, 1), norm="linf")
  assert linf[first].tolist() == [25, 18, 13, 9, 6, 4, 3, 2, 2, 1]
  l2 = window_sizes(10000, (28, 28, 1), norm="l2")  # at least 3, odd
  assert l2[first].tolist() == [25, 19, 13, 9, 7, 5, 3, 3, 3, 3]
  # boundaries: p halves after iteration 10 (the 11th query), not at it
  assert linf[10] == 25 and linf[11] == 18 and linf[50] == 18 and linf[51] == 13
  # CIFAR (32 x 32 x 3): sqrt(0.8 * 3072 / 3) = 28.62; capped at the image on a 5 x 7 image
  assert window_sizes(1, (32, 32, 3), norm="linf").tolist() == [29]
  assert window_sizes(1, (5, 7, 2), norm="linf").tolist() == [5]
  assert window_sizes(1, (5, 7, 2), norm="l2").tolist() == [5]
  # AutoAttack's 5,000 queries without rescaling stop at p_init / 128 (sqrt(0.8/128*784) = 2.2)
  assert window_sizes(5000, (28, 28, 1), norm="linf")[-1] == 2
  assert window_sizes(5000, (28, 28, 1), norm="linf", rescale=True)[-1] == 1


def test_meta_pseudo_gaussian_equals_the_reference():
  ref = _reference()
  torch = pytest.importorskip("torch")
  attack = ref.SquareAttack(None, norm="L2", device="cpu")
  for size in list(range(1, 30)) + [41, 56]:
    torch.manual_seed(size)
    transposed = bool(torch.rand([1]) > 0.5)  # the reference's own coin, drawn again below
    torch.manual_seed(size)
    theirs = attack.eta(size).numpy()
    ours = meta_pseudo_gaussian(size)
    assert ours.shape == (size, size)
    np.testing.assert_allclose(ours.T if transposed else ours, theirs, rtol=2e-6, atol=1e-7)
    # its shape: unit L2 norm, positive top half, negative bottom half, each half peaked at
    # its centre (row and column // 2) and mirror-symmetric left-right for the odd sizes (the
    # L2 update's)
    np.testing.assert_allclose(np.sum(ours.astype(np.float64) ** 2), 1.0, rtol=1e-6)
    assert np.all(ours[: size // 2] > 0) and np.all(ours[size // 2:] < 0)
    bottom = -ours[size // 2:]
    assert bottom[(size - size // 2) // 2, size // 2] == bottom.max()
    if size % 2:
      np.testing.assert_allclose(ours, ours[:, ::-1], atol=1e-7)


# ------------------------------------------------------------- against the reference on a CNN

# (norm, epsilon) with about half of the 500 test points robust after 100 queries
_EPSILON = {"linf": 0.15, "l2": 2.0}
_QUERIES = 100


@pytest.fixture(scope="module")
def mnist_cnn():
  """A small torch CNN trained 150 Adam steps on the embedded MNIST train split, and Square
  (ours, key 0, 100 queries) on 500 test points, per norm on first use: (net, our logits_fn,
  images, labels, attacked(norm) -> AttackResult)."""
  torch = pytest.importorskip("torch")
  from advbound import data, models  # pylint: disable=g-import-not-at-top
  nn = torch.nn
  threads = torch.get_num_threads()
  torch.set_num_threads(1)  # 3x faster than 2 on small convolutions and busy cores
  train = data.load("mnist", source="embedded", split="train")
  test = data.load("mnist", source="embedded", split="test")
  torch.manual_seed(0)
  net = nn.Sequential(nn.Conv2d(1, 4, 5, stride=2, padding=2), nn.ReLU(),
                      nn.Conv2d(4, 8, 5, stride=2, padding=2), nn.ReLU(), nn.Flatten(),
                      nn.Linear(8 * 7 * 7, 10))
  opt = torch.optim.Adam(net.parameters(), lr=3e-3)
  xt = torch.from_numpy(train.images).permute(0, 3, 1, 2)
  yt = torch.from_numpy(train.labels.astype(np.int64))
  gen = torch.Generator().manual_seed(0)
  for _ in range(150):
    idx = torch.randint(0, len(xt), (64,), generator=gen)
    opt.zero_grad()
    nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
    opt.step()
  net.eval()
  fn = models.as_logits_fn(models.from_torch(net, input_shape=(1, 28, 28)))
  x, y = test.images[:500], test.labels[:500].astype(np.int32)
  cache = {}

  def attacked(norm):
    if norm not in cache:
      cache[norm] = square(fn, jax.random.key(0), x, y, epsilon=_EPSILON[norm],
                           bounds=(0.0, 1.0), norm=norm, num_queries=_QUERIES)
    return cache[norm]

  yield net, fn, x, y, attacked
  torch.set_num_threads(threads)


def _nchw(torch, x):
  return torch.from_numpy(np.array(np.transpose(x, (0, 3, 1, 2)), order="C"))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_robust_accuracy_agrees_with_the_reference(mnist_cnn, norm):
  """Both seeded; they draw different random numbers (the reference one window per iteration
  for the whole batch, we one per example), so only the counts compare: within 15 of 500 (3
  points; over seeds the reference's count varies by ~5 and ours by ~2, and at 300 queries
  ours came out 0-8 lower)."""
  ref = _reference()
  torch = pytest.importorskip("torch")
  net, _, x, y, attacked = mnist_cnn
  xt = _nchw(torch, x)
  with torch.no_grad():
    clean = net(xt).argmax(1).numpy() == y
    attack = ref.SquareAttack(net, norm={"linf": "Linf", "l2": "L2"}[norm], n_queries=_QUERIES,
                              eps=_EPSILON[norm], p_init=0.8, n_restarts=1, seed=0,
                              resc_schedule=False, device="cpu")
    theirs = int(np.sum(net(attack.perturb(xt, torch.from_numpy(y.astype(np.int64))))
                        .argmax(1).numpy() == y))
  result = attacked(norm)
  ours = int(np.sum(~np.asarray(result.success)))
  assert clean.sum() >= 400 and 100 < theirs < clean.sum() - 100  # a trained model, a real attack
  assert abs(ours - theirs) <= 15, (ours, theirs)
  # our successes are torch's misclassifications
  with torch.no_grad():
    wrong = net(_nchw(torch, np.asarray(result.adversarial))).argmax(1).numpy() != y
  assert np.all(wrong[np.asarray(result.success)])


def _our_uniforms(key, examples, steps, count_start, count_step):
  """The uniforms our attack draws for each of `examples` at restart 0: the start's, then each
  iteration's, as one flat float32 stream per example [len(examples), ...]."""
  uniforms = square_module._uniforms  # pylint: disable=protected-access

  @jax.jit
  def draw(ids):
    keys = square_module._restart_keys(key, ids, 0)  # pylint: disable=protected-access
    first = uniforms(keys, 0, count_start)                                           # [n, a]
    rest = jax.vmap(lambda t: uniforms(keys, t, count_step))(jnp.arange(1, steps + 1))  # [T, n, b]
    return jnp.concatenate([first, rest.transpose(1, 0, 2).reshape(len(ids), -1)], 1)

  return np.asarray(draw(jnp.asarray(examples, jnp.int32)))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_reference_fed_our_random_numbers_takes_our_steps(mnist_cnn, norm, monkeypatch):
  """The reference on one example at a time, its torch.rand replaced by our uniforms for that
  example in the order it asks for them: it ends where we end (the same adversarial point, the
  same count of numbers consumed) on three points we break and three we do not."""
  ref = _reference()
  torch = pytest.importorskip("torch")
  net, fn, x, y, attacked = mnist_cnn
  result = attacked(norm)
  _, h, w, c = x.shape
  if norm == "linf":
    count_start, count_step = c * w, 2 + c
  else:
    count_start, count_step = 25 * (1 + c), 5 + c  # a 5 x 5 grid on 28 x 28
  correct = np.asarray(np.argmax(fn(x[:100]), 1)) == y[:100]
  success = np.asarray(result.success[:100])
  chosen = np.concatenate([np.flatnonzero(correct & success)[:3],
                           np.flatnonzero(correct & ~success)[:3]])
  streams = _our_uniforms(jax.random.key(0), chosen, _QUERIES, count_start, count_step)
  for i, stream in zip(chosen, streams):
    used = [0]

    def fake_rand(*shape, stream=stream, used=used, **_):
      shape = list(shape[0]) if len(shape) == 1 and isinstance(shape[0], (list, tuple)) \
          else list(shape)
      k = int(np.prod(shape))
      assert used[0] + k <= len(stream), "the reference wants more numbers than we drew"
      used[0] += k
      return torch.from_numpy(stream[used[0] - k:used[0]].copy()).reshape(shape)

    attack = ref.SquareAttack(net, norm={"linf": "Linf", "l2": "L2"}[norm],
                              n_queries=_QUERIES, eps=_EPSILON[norm], p_init=0.8,
                              resc_schedule=False, device="cpu")
    xt = _nchw(torch, x[i:i + 1])
    attack.init_hyperparam(xt)
    with monkeypatch.context() as m, torch.no_grad():
      m.setattr(torch, "rand", fake_rand)
      queries, adv = attack.attack_single_run(xt, torch.tensor([int(y[i])]))
      theirs_broken = int(net(adv).argmax(1)) != y[i]
    assert theirs_broken == bool(success[i]), i
    if theirs_broken:
      np.testing.assert_allclose(np.asarray(result.adversarial[i]),
                                 adv.permute(0, 2, 3, 1).numpy()[0], atol=1e-5)
    # the numbers consumed: the start's and one step's per query after the first
    assert used[0] == count_start + (int(queries) - 1) * count_step, i


# ------------------------------------------------------------------------------ no gradients

def _step_problem(seed=0, n=24, side=16):
  """Two classes; class 1's logit counts the pixels above 0.5, weighted by fixed +-1: a
  function whose input gradient is zero everywhere it exists. Pixels lie 0.05..0.09 from 0.5
  (each can cross with eps = 0.1) and class 0's logit is 20.5, some 17-25 pixels' worth above
  class 1's: a coordinated change is needed."""
  rng = np.random.default_rng(seed)
  v = rng.choice([-1.0, 1.0], size=side * side).astype(np.float32)

  def fn(z):
    above = (z.reshape(z.shape[0], -1) > 0.5).astype(jnp.float32)
    score = above @ v
    return jnp.stack([jnp.full_like(score, 20.5), score], axis=1)

  xs = []
  while len(xs) < n:
    x = 0.5 + rng.choice([-1, 1], side * side) * rng.uniform(0.05, 0.09, side * side)
    if abs(float((x > 0.5) @ v)) <= 4:
      xs.append(x.reshape(side, side, 1))
  return fn, np.asarray(xs, np.float32), np.zeros(n, np.int32)


def test_no_gradients_needed_where_pgd_fails():
  fn, x, y = _step_problem()
  grad = jax.grad(lambda z: fn(z)[:, 1].sum())(jnp.asarray(x))
  assert not np.any(np.asarray(grad))  # gradient masking: nothing to follow
  eps = 0.1
  pgd_adv = pgd(fn, jax.random.key(1), x, y, epsilon=eps, step_size=0.01, num_steps=20,
                bounds=(0.0, 1.0))
  assert np.sum(np.argmax(fn(pgd_adv), 1) != y) == 0  # PGD-20 breaks none
  result = square(fn, jax.random.key(0), x, y, epsilon=eps, bounds=(0.0, 1.0),
                  num_queries=1000)
  assert np.all(result.success)


def _no_gradients(fn):
  """fn, whose derivative raises: a model an attack can only evaluate."""
  @jax.custom_jvp
  def guarded(z):
    return fn(z)

  @guarded.defjvp
  def _(primals, tangents):
    raise AssertionError("the model was differentiated")

  with pytest.raises(AssertionError, match="differentiated"):
    jax.grad(lambda z: guarded(z).sum())(jnp.zeros((1, 6, 6, 1)))
  return guarded


# ------------------------------------------------------------------------------ closed forms

def _affine_problem(norm, seed=0, n=16, shape=(6, 6, 1), low=0.02, high=0.03):
  """Two classes, logits (0, w.x + b), every x of class 0 (w.x + b < 0) at a known distance
  from the boundary in `norm`, uniform in [low, high]: the minimal perturbation -f(x) / |w|_dual
  (dual L1 for L-inf, L2 for L2), the box [0, 1] inactive (x within 0.5 +- 0.2). Returns
  (fn, x, y, distances)."""
  rng = np.random.default_rng(seed)
  d = int(np.prod(shape))
  w = rng.normal(size=d).astype(np.float64)
  b = -0.5 * w.sum()
  dual = np.abs(w).sum() if norm == "linf" else np.linalg.norm(w)
  dist = rng.uniform(low, high, n)
  u = 0.5 + rng.uniform(-0.05, 0.05, size=(n, d))
  x = u + ((-dist * dual) - (u @ w + b))[:, None] * w / (w @ w)  # w.x + b = -dist * dual
  assert np.all(np.abs(x - 0.5) < 0.2)
  wf, bf = w.astype(np.float32), np.float32(b)
  fn = lambda z: jnp.stack([jnp.zeros(z.shape[0]), z.reshape(z.shape[0], -1) @ wf + bf], 1)
  return fn, x.reshape((n,) + shape).astype(np.float32), np.zeros(n, np.int32), dist


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_affine_closed_form(norm):
  """Above the minimal perturbation (1.5x the largest, 2x in L2) every point breaks, below it
  (0.98x the smallest) none can; on a model whose derivative raises."""
  fn, x, y, dist = _affine_problem(norm)
  fn = _no_gradients(fn)  # and Square never differentiates it
  factor = 1.5 if norm == "linf" else 2.0
  for eps, expected in ((dist.max() * factor, True), (dist.min() * 0.98, False)):
    result = square(fn, jax.random.key(0), x, y, epsilon=float(eps), bounds=(0.0, 1.0),
                    norm=norm, num_queries=1000)
    assert np.all(np.asarray(result.success) == expected), (eps, result.success)
    size = np.asarray(result.distortion[norm])
    if expected:
      assert np.all(size <= eps * (1 + 1e-5)) and np.all(size >= dist * (1 - 1e-4))
    else:
      np.testing.assert_array_equal(result.adversarial, x)


# -------------------------------------------------------------------- budget, bounds and units

@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_every_query_within_epsilon_and_bounds(norm):
  """Images touching both bounds of (-1, 2); the model records the largest violation of the
  budget and the bounds over every input it is asked about."""
  rng = np.random.default_rng(3)
  n, shape = 8, (10, 10, 3)
  x = rng.uniform(-1, 2, size=(n,) + shape).astype(np.float32)
  x[:, :3] = -1.0
  x[:, -3:] = 2.0
  W = rng.normal(size=(int(np.prod(shape)), 5)).astype(np.float32)
  eps = 0.3 if norm == "linf" else 2.0
  worst = []

  def record(z):
    z = np.asarray(z)
    delta = (z - x).reshape(n, -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    worst.append((float(size.max() - eps), float(np.maximum(-1 - z, z - 2).max())))

  def fn(z):
    jax.debug.callback(record, z)
    return jnp.tanh(z.reshape(n, -1) @ W / 10)

  y = np.asarray(np.argmax(fn(x), 1), np.int32)
  result = square(fn, jax.random.key(0), x, y, epsilon=eps, bounds=(-1.0, 2.0), norm=norm,
                  num_queries=100)
  assert len(worst) >= 3 and np.asarray(result.success).any()
  over_budget, over_bounds = np.max(worst, axis=0)
  assert over_budget <= 1e-5 * max(eps, 1) and over_bounds <= 0
  assert np.all((result.adversarial >= -1) & (result.adversarial <= 2))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_in_the_units_of_the_bounds(norm):
  """The same problem on (0, 255) with eps * 255: the same draws, the same outcome (up to
  rounding flipping a rare accept decision)."""
  fn, x, y, _ = _affine_problem(norm, seed=2, n=24, low=0.002, high=0.04)
  eps = 0.03
  scaled_fn = lambda scale, z: fn(z * scale)  # one compiled attack for both (scale traced)
  unit = square(jax.tree_util.Partial(scaled_fn, jnp.float32(1.0)), jax.random.key(5), x, y,
                epsilon=eps, bounds=(0.0, 1.0), norm=norm, num_queries=200)
  scaled = square(jax.tree_util.Partial(scaled_fn, jnp.float32(1 / 255)), jax.random.key(5),
                  x * 255.0, y, epsilon=eps * 255.0, bounds=(0.0, 255.0), norm=norm,
                  num_queries=200)
  assert 0 < np.sum(unit.success) < len(x)  # a problem with both outcomes
  assert np.sum(unit.success != scaled.success) <= 1
  same = unit.success == scaled.success
  np.testing.assert_allclose(np.asarray(scaled.adversarial)[same] / 255.0,
                             np.asarray(unit.adversarial)[same], atol=1e-5)


# ----------------------------------------------------------------------- behaviour and checks

def _mlp(seed=0, shape=(8, 8, 1), k=5):
  rng = np.random.default_rng(seed)
  w1 = rng.normal(size=(int(np.prod(shape)), 16)).astype(np.float32) / 4
  w2 = rng.normal(size=(16, k)).astype(np.float32)
  return lambda z: jnp.tanh(z.reshape(z.shape[0], -1) @ w1) @ w2


def _mlp_inputs(n=13, seed=1, shape=(8, 8, 1), wrong=2):
  """Images, and labels: the predictions of _mlp() except on the first `wrong` images."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(0, 1, size=(n,) + shape).astype(np.float32)
  y = np.array(np.argmax(_mlp(shape=shape)(x), 1), np.int32)
  y[:wrong] = (y[:wrong] + 1) % 5
  return x, y


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.5)])
def test_batch_independence(norm, eps):
  fn = _mlp()
  x, y = _mlp_inputs()
  kw = dict(epsilon=eps, bounds=(0.0, 1.0), norm=norm, num_queries=60)
  whole = square(fn, jax.random.key(0), x, y, **kw)
  small = square(fn, jax.random.key(0), x, y, batch_size=3, **kw)
  np.testing.assert_array_equal(whole.adversarial, small.adversarial)
  np.testing.assert_array_equal(whole.success, small.success)
  assert 2 < np.sum(whole.success) < len(x)
  # a subset keeps its results when given its indices (as AutoAttack attacks the robust rest)
  idx = np.array([2, 5, 11])
  part = square(fn, jax.random.key(0), x[idx], y[idx], ids=idx, **kw)
  np.testing.assert_array_equal(part.adversarial, np.asarray(whole.adversarial)[idx])


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.5)])
def test_host_and_device_loops_agree(norm, eps):
  """loop="host" (one query jitted alone, the CPU default) and loop="device" (one compiled
  program) draw and accept the same squares, restarts included."""
  fn = _mlp()
  x, y = _mlp_inputs()
  kw = dict(epsilon=eps, bounds=(0.0, 1.0), norm=norm, num_queries=60, restarts=2)
  host = square(fn, jax.random.key(2), x, y, loop="host", **kw)
  device = square(fn, jax.random.key(2), x, y, loop="device", **kw)
  np.testing.assert_array_equal(host.success, device.success)
  assert 2 < np.sum(host.success) < len(x)
  np.testing.assert_allclose(host.adversarial, device.adversarial, atol=1e-6)
  with pytest.raises(ValueError, match="unknown loop 'cpu'"):
    square(fn, jax.random.key(2), x, y, loop="cpu", **kw)


def test_misclassified_inputs_and_restarts():
  fn = _mlp()
  x, y = _mlp_inputs(n=20, seed=4)
  wrong = np.asarray(np.argmax(fn(x), 1)) != y
  assert wrong.sum() == 2
  kw = dict(epsilon=0.05, bounds=(0.0, 1.0), num_queries=30)
  one = square(fn, jax.random.key(0), x, y, **kw)
  # already misclassified: a success with zero distortion
  assert np.all(np.asarray(one.success)[wrong])
  np.testing.assert_array_equal(np.asarray(one.adversarial)[wrong], x[wrong])
  # a second restart begins where the first ended: it can only add successes
  two = square(fn, jax.random.key(0), x, y, restarts=3, **kw)
  assert np.all(np.asarray(two.success)[np.asarray(one.success)])
  assert np.sum(two.success) > np.sum(one.success)
  np.testing.assert_array_equal(np.asarray(two.adversarial)[np.asarray(one.success)],
                                np.asarray(one.adversarial)[np.asarray(one.success)])


def test_bad_arguments_are_named():
  fn = _mlp()
  x, y = _mlp_inputs(n=2)
  ok = dict(epsilon=0.1, bounds=(0.0, 1.0))
  with pytest.raises(ValueError, match="norm 'l1'"):
    square(fn, jax.random.key(0), x, y, norm="l1", **ok)
  with pytest.raises(ValueError, match="epsilon"):
    square(fn, jax.random.key(0), x, y, epsilon=-1.0, bounds=(0.0, 1.0))
  with pytest.raises(ValueError, match="p_init"):
    square(fn, jax.random.key(0), x, y, p_init=1.5, **ok)
  with pytest.raises(ValueError, match="restarts"):
    square(fn, jax.random.key(0), x, y, restarts=0, **ok)
  with pytest.raises(ValueError, match="num_queries"):
    square(fn, jax.random.key(0), x, y, num_queries=2.5, **ok)
  with pytest.raises(ValueError, match=r"images \[N, H, W, C\]"):
    square(fn, jax.random.key(0), x.reshape(2, 64), y, **ok)
  with pytest.raises(ValueError, match="height >= 5"):
    square(fn, jax.random.key(0), x[:, :4, :4], y, norm="l2", **ok)
  with pytest.raises(ValueError, match="ids"):
    square(fn, jax.random.key(0), x, y, ids=[0], **ok)
  with pytest.raises(ValueError, match="outside bounds"):
    square(fn, jax.random.key(0), x + 2, y, **ok)


_SHARDED = textwrap.dedent("""
    import jax, numpy as np
    from advbound.runtime import sharding
    from advbound.attacks.square import square
    from tests import square_test as t

    assert jax.device_count() == 8
    fn = t._mlp()
    x, y = t._mlp_inputs(n=21)

    def run():
      out = []
      for norm, eps in (("linf", 0.05), ("l2", 0.5)):
        r = square(fn, jax.random.key(3), x, y, epsilon=eps, bounds=(0.0, 1.0), norm=norm,
                   num_queries=40, batch_size=16)
        out.append((np.asarray(r.adversarial), np.asarray(r.success)))
      return out

    many = run()
    with sharding.use_devices(jax.devices()[:1]):
      one = run()
    for (a, s), (b, t_) in zip(many, one):
      np.testing.assert_array_equal(s, t_)
      np.testing.assert_allclose(a, b, atol=1e-6)
      assert s.any() and not s.all()
    print("SHARDED OK", [int(s.sum()) for _, s in many])
""")


def test_sharded_over_8_devices_equals_one_device():
  eight_devices.assert_script_passes(_SHARDED)
