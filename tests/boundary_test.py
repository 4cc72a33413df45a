"""Tests of advbound/boundary.py: analytic crossings on linear models, a NumPy reference loop,
fast vs scan, purity and summaries on hand-made arrays, and compile counts."""

import chex
import jax
import numpy as np
import pytest

from advbound import boundary
from advbound.directions import random_orthogonal
from advbound.models import as_logits_fn


def _linear(num_classes=3, dim=12, seed=0):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(num_classes, dim)).astype(np.float32)
  b = rng.normal(size=(num_classes,)).astype(np.float32) * 0.1
  return (lambda z: z.reshape(len(z), -1) @ w.T + b), w, b


def _reference(fn, x, directions, step, levels, bounds):
  """The released code's loop, in NumPy: per image, per direction, per magnitude."""
  n, m = len(x), len(directions)
  dist, adj = np.full((n, m), np.inf, np.float32), np.full((n, m), -1, np.int32)
  for i in range(n):
    c = int(np.argmax(fn(x[i:i + 1])))
    for j in range(m):
      for k in range(1, levels + 1):
        p = x[i] + np.float32(k) * np.float32(step) * directions[j]
        if bounds is not None:
          p = np.clip(p, *bounds)
        cls = int(np.argmax(fn(p[None])))
        if cls != c:
          dist[i, j], adj[i, j] = np.float32(k) * np.float32(step), cls
          break
  return dist, adj


def test_two_class_linear_matches_the_analytic_crossing():
  rng = np.random.default_rng(1)
  w = rng.normal(size=(16,)).astype(np.float32)
  fn = lambda z: np.stack([z @ w, -(z @ w)], -1) if isinstance(z, np.ndarray) else \
      jax.numpy.stack([z @ w, -(z @ w)], -1)
  x = rng.normal(size=(5, 16)).astype(np.float32)
  d = np.asarray(random_orthogonal(jax.random.key(0), 16, (16,), both_signs=True))
  step, max_distance = 0.05, 3.0
  r = boundary.search(fn, x, d, step=step, max_distance=max_distance)
  # class 0 iff w.x > 0; along x + t d the sign flips at t* = -w.x / w.d (when positive)
  t = -(x @ w)[:, None] / (d @ w)[None, :]
  k = np.ceil(t / step)
  expect = np.where((t > 0) & (k <= 60), k * np.float32(step), np.inf)
  near_grid = np.abs(t / step - np.round(t / step)) < 1e-4  # float ties: skip
  np.testing.assert_allclose(np.asarray(r.distance)[~near_grid], expect[~near_grid], rtol=1e-6)
  center = (x @ w < 0).astype(int)
  np.testing.assert_array_equal(np.asarray(r.center), center)
  adj = np.asarray(r.adjacent)
  np.testing.assert_array_equal(adj[np.isfinite(expect) & ~near_grid],
                                (1 - center[:, None] + 0 * k)[np.isfinite(expect) & ~near_grid])
  assert np.all(adj[~np.isfinite(expect)] == -1)


@pytest.mark.parametrize("bounds", [None, (0.0, 1.0)])
def test_multiclass_linear_matches_numpy_reference(bounds):
  fn, _, _ = _linear()
  rng = np.random.default_rng(2)
  x = rng.uniform(0.2, 0.8, size=(3, 3, 4)).astype(np.float32)
  d = np.asarray(random_orthogonal(jax.random.key(1), 12, (3, 4), both_signs=True))
  r = boundary.search(fn, x, d, step=0.1, max_distance=2.0, bounds=bounds, batch_size=64)
  dist, adj = _reference(lambda z: np.asarray(fn(z)), x, d, 0.1, 20, bounds)
  np.testing.assert_array_equal(np.asarray(r.distance), dist)
  np.testing.assert_array_equal(np.asarray(r.adjacent), adj)
  assert np.isfinite(dist).any() and (~np.isfinite(dist)).any()  # both cases exercised


@pytest.mark.parametrize("stride", [2, 3, 7, None])
def test_fast_equals_scan_on_linear(stride):
  """Without clipping a linear model's center region is convex along every ray: no thin regions,
  so fast must give exactly the scan answer."""
  fn, _, _ = _linear(num_classes=4, dim=20, seed=3)
  x = np.random.default_rng(4).normal(size=(6, 20)).astype(np.float32)
  d = np.asarray(random_orthogonal(jax.random.key(2), 20, (20,), both_signs=True))
  kw = dict(step=0.05, max_distance=2.0, batch_size=100)
  scan = boundary.search(fn, x, d, method="scan", **kw)
  fast = boundary.search(fn, x, d, method="fast", stride=stride, **kw)
  np.testing.assert_array_equal(np.asarray(fast.distance), np.asarray(scan.distance))
  np.testing.assert_array_equal(np.asarray(fast.adjacent), np.asarray(scan.adjacent))
  assert np.asarray(fast.evaluations).sum() < np.asarray(scan.evaluations).sum()


def test_fast_skips_a_thin_region_as_documented():
  """A 1-D model with a class-1 sliver at t in (0.25, 0.35) and class 2 from 0.8 on: scan finds
  the sliver at 0.3; fast with stride 5 (coarse levels 0.1, 0.5, 1.0) never probes it."""
  def fn(z):
    t = z[:, 0]
    sliver = (t > 0.25) & (t < 0.35)
    far = t > 0.8
    return jax.numpy.stack([~sliver & ~far, sliver, far], -1).astype(jax.numpy.float32)
  x, d = np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32)
  scan = boundary.search(fn, x, d, step=0.1, max_distance=1.0)
  fast = boundary.search(fn, x, d, step=0.1, max_distance=1.0, method="fast", stride=5)
  np.testing.assert_allclose(np.asarray(scan.distance), [[0.3]], rtol=1e-6)
  assert int(scan.adjacent[0, 0]) == 1
  np.testing.assert_allclose(np.asarray(fast.distance), [[0.9]], rtol=1e-6)
  assert int(fast.adjacent[0, 0]) == 2


def test_compiles_once_per_shape():
  """Batch shapes are full or a multiple of batch_size / 16: a search compiles at most 16
  kernels, and a second search of the same shapes compiles nothing."""
  fn, _, _ = _linear()
  d = np.asarray(random_orthogonal(jax.random.key(1), 12, (3, 4), both_signs=True))
  rng = np.random.default_rng(5)
  kw = dict(step=0.05, max_distance=1.0, bounds=(0.0, 1.0), batch_size=32)
  start = boundary._TRACES["probe"]
  boundary.search(fn, rng.uniform(0, 1, size=(4, 3, 4)).astype(np.float32), d, **kw)
  first = boundary._TRACES["probe"] - start
  assert 1 <= first <= 16
  for method in ("scan", "fast", "scan"):  # many levels, shrinking sets of open directions
    x = rng.uniform(0, 1, size=(4, 3, 4)).astype(np.float32)
    boundary.search(fn, x, d, method=method, **kw)
  assert boundary._TRACES["probe"] - start <= 16
  before = boundary._TRACES["probe"]
  boundary.search(fn, x, d, method="fast", **kw)
  boundary.search(fn, x, d, method="scan", **kw)
  assert boundary._TRACES["probe"] == before


def test_bad_arguments():
  fn, _, _ = _linear()
  x = np.full((2, 3, 4), 0.5, np.float32)
  d = np.ones((2, 3, 4), np.float32)
  with pytest.raises(ValueError, match="larger than max_distance"):
    boundary.search(fn, x, d, step=0.5, max_distance=0.2)
  with pytest.raises(ValueError, match="method"):
    boundary.search(fn, x, d, step=0.1, max_distance=1.0, method="bisect")
  with pytest.raises(ValueError, match="directions must have shape"):
    boundary.search(fn, x, np.ones((2, 12)), step=0.1, max_distance=1.0)
  with pytest.raises(ValueError, match="stride"):
    boundary.search(fn, x, d, step=0.1, max_distance=1.0, method="fast", stride=1)
  with pytest.raises(ValueError, match="x"):
    boundary.search(fn, x + 1, d, step=0.1, max_distance=1.0, bounds=(0.0, 1.0))
  with pytest.raises(FloatingPointError, match="NaN"):
    boundary.search(lambda z: fn(z) * np.nan, x, d, step=0.1, max_distance=1.0)


def test_purity_on_hand_made_adjacency():
  adjacent = np.array([[1, 1, 1, 2, 2, 3, -1, -1],   # 6 found: 3 of 1, 2 of 2, 1 of 3
                       [4, 4, 4, 4, -1, -1, -1, -1],  # one class
                       [-1] * 8])                     # none found
  p = np.asarray(boundary.purity(adjacent, num_classes=5, k=3))
  np.testing.assert_allclose(p, [[3 / 6, 5 / 6, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
  with pytest.raises(ValueError, match="adjacent classes"):
    boundary.purity(adjacent, num_classes=4)


def test_summaries_on_hand_made_distances():
  inf = np.inf
  r = boundary.BoundaryResult(
      center=np.array([0, 0]),
      distance=np.array([[0.3, 0.1, inf, 0.2], [inf, inf, inf, 0.4]], np.float32),
      adjacent=np.array([[1, 2, -1, 1], [-1, -1, -1, 3]], np.int32),
      evaluations=np.array([4, 4]))
  directions = np.stack([np.full(4, v, np.float32) for v in (1.0, 2.0, 1.0, 0.5)])
  s = boundary.summarize(r, directions=directions)
  np.testing.assert_allclose(np.asarray(s["min"]), [0.1, 0.4])
  np.testing.assert_allclose(np.asarray(s["median"]), [0.25, inf])  # inf-inf must not be NaN
  np.testing.assert_allclose(np.asarray(s["fraction_none"]), [0.25, 0.75])
  np.testing.assert_allclose(np.asarray(s["purity"]), [[2 / 3, 1, 1], [1, 1, 1]])
  np.testing.assert_allclose(np.asarray(s["linf_min"]), [0.1, 0.2])  # 0.1*1 vs 0.2*2; 0.4*0.5
  np.testing.assert_allclose(np.asarray(s["linf_median"]), [0.25, inf])


@pytest.mark.xdist_group(name="quickstart")
def test_fast_agrees_with_scan_on_the_quickstart_model(quickstart_natural):
  model, _, test = quickstart_natural
  fn = as_logits_fn(model)
  x = test.images[:4]
  d = random_orthogonal(jax.random.key(0), 784, (28, 28, 1), both_signs=True)
  kw = dict(step=0.02, max_distance=0.5, bounds=(0.0, 1.0), batch_size=2048)
  scan = boundary.search(fn, x, d, method="scan", **kw)
  fast = boundary.search(fn, x, d, method="fast", **kw)
  same = (np.asarray(scan.distance) == np.asarray(fast.distance)) & (
      np.asarray(scan.adjacent) == np.asarray(fast.adjacent))
  print(f"fast == scan on {same.mean():.4%} of {same.size} directions; evaluations "
        f"{int(np.sum(fast.evaluations))} vs {int(np.sum(scan.evaluations))}")
  assert same.mean() >= 0.995
  assert np.isfinite(np.asarray(scan.distance)).mean() > 0.1  # boundaries were found


class PurityAndMedianUnderTransformsTest(chex.TestCase):
  """purity and the inf-keeping median are pure array functions: the same values jitted, not
  jitted and on the device."""

  @chex.variants(with_jit=True, without_jit=True, with_device=True)
  def test_purity_and_median(self):
    adjacent = np.array([[1, 1, 1, 2, 2, 3, -1, -1], [-1] * 8], np.int32)
    p = self.variant(lambda a: boundary.purity(a, 5, 3))(adjacent)
    chex.assert_shape(p, (2, 3))
    chex.assert_trees_all_close(p, np.array([[3 / 6, 5 / 6, 1.0], [0.0, 0.0, 0.0]],
                                             np.float32), atol=1e-6)
    inf = np.inf
    d = np.array([[0.3, 0.1, inf, 0.2], [inf, inf, inf, 0.4], [0.5, inf, inf, inf]], np.float32)
    m = self.variant(boundary.median)(d)
    chex.assert_trees_all_equal(np.asarray(m), np.array([0.25, inf, inf], np.float32))
