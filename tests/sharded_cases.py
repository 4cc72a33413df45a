"""Sharded kernels on 8 devices give the single device's results (run by tests/sharding_test.py).

This module runs in a subprocess whose XLA_FLAGS give the CPU 8 devices
(--xla_force_host_platform_device_count=8); pytest does not collect it otherwise (its name
does not end in _test.py). Every case computes the same thing twice in this one process: on the
mesh of all 8 devices (the default) and under `sharding.use_devices(jax.devices()[:1])`, and
requires equal classes, votes, boundary distances and successes, and distortions equal to float
tolerance.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from advbound import attacks, boundary, directions, models, region, training
from advbound.analysis import evaluate
from advbound.data import load
from advbound.runtime import batching, sharding
from advbound.training import guard
from ml_collections import config_dict

from configs import common

if jax.device_count() < 8:
  pytest.skip("needs 8 devices (run through tests/sharding_test.py)", allow_module_level=True)

ONE = jax.devices()[:1]
BOUNDS = (0.0, 1.0)


def _both(run):
  """(run() on all 8 devices, run() on one device)."""
  assert sharding.num_devices() == 8
  many = run()
  with sharding.use_devices(ONE):
    assert not sharding.is_sharded()
    one = run()
  return many, one


@pytest.fixture(scope="module")
def mnist():
  return load("mnist", source="embedded", split="train")


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
  """(MnistCNN trained on 8 devices, the same trained on one device, the guard's records of
  both): 20 steps, batch 64, with the overfitting guard's PGD check every 10 steps."""
  cfg = common.train(num_steps=20, batch_size=64, log_every=10, checkpoint_every=20)
  cfg.guard = config_dict.ConfigDict(dict(every=10, examples=32, max_drop=1.0, seed=0,
                                          pgd=common.pgd(0.3, 0.1, 3)))
  model_cfg = config_dict.ConfigDict(dict(name="mnist_cnn"))
  root = tmp_path_factory.mktemp("train")
  many = training.train(mnist, model_cfg, cfg, str(root / "many"))
  with sharding.use_devices(ONE):
    one = training.train(mnist, model_cfg, cfg, str(root / "one"))
  records = [guard.read_record(str(root / name)) for name in ("many", "one")]
  return many, one, records


class _Tiny(nnx.Module):
  """conv 3x3x4 stride 2, ReLU, dense 10: cheap enough for every attack on 8 fake devices."""

  def __init__(self, rngs):
    self.conv = nnx.Conv(1, 4, (3, 3), strides=(2, 2), rngs=rngs)
    self.fc = nnx.Linear(14 * 14 * 4, 10, rngs=rngs)

  def __call__(self, x):
    h = jax.nn.relu(self.conv(x))
    return 4.0 * self.fc(h.reshape(h.shape[0], -1))


@pytest.fixture(scope="module")
def fn():
  return models.as_logits_fn(_Tiny(nnx.Rngs(0)))


@pytest.fixture(scope="module")
def images(mnist):
  return mnist.images[:21], mnist.labels[:21]  # 21: not a multiple of 8 (padding is exercised)


def test_put_batch_splits_rows_and_to_host_gathers():
  a = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
  sharded = sharding.put_batch(a)
  assert len(sharded.addressable_shards) == 8
  for shard in sharded.addressable_shards:
    chex.assert_shape(shard.data, (2, 3))
    np.testing.assert_array_equal(np.asarray(shard.data), a[shard.index])
  np.testing.assert_array_equal(sharding.to_host(sharded), a)
  with pytest.raises(ValueError, match="cannot be split over 8 devices"):
    sharding.put_batch(a[:10])
  assert sharding.round_up(10) == 16 and sharding.round_up(0) == 8
  rep = sharding.replicate({"w": jnp.ones(3)})
  assert rep["w"].sharding.is_fully_replicated and len(rep["w"].devices()) == 8


def test_map_chunks_pads_to_the_devices_and_drops_the_padding():
  x = np.arange(21 * 2, dtype=np.float32).reshape(21, 2)
  seen = []

  @jax.jit
  def double(a):
    return 2 * a

  def fn_(a):
    seen.append(a.shape[0])
    assert len(a.sharding.device_set) == 8
    return double(a)

  out = batching.map_chunks(fn_, x, chunk_size=5)
  np.testing.assert_array_equal(out, 2 * x)
  assert set(seen) == {8}  # 5 rounded up to the 8 devices; the last chunk padded


def test_training_on_8_devices_equals_one_device(trained):
  many, one, records = trained
  a, b = nnx.state(many, nnx.Param), nnx.state(one, nnx.Param)
  chex.assert_trees_all_close(jax.tree.map(np.asarray, a), jax.tree.map(np.asarray, b),
                              atol=1e-5, rtol=1e-5)
  leaf = jax.tree.leaves(a)[0]
  assert leaf.sharding.is_fully_replicated and len(leaf.devices()) == 8
  checks = [[(h["step"], round(h["pgd_accuracy"], 6)) for h in m["history"]]
            for m in records]
  assert checks[0] == checks[1] and [s for s, _ in checks[0]] == [10, 20]


def test_predict_and_pgd_accuracy(fn, images):
  x, y = images
  many, one = _both(lambda: evaluate.predict(fn, x, batch_size=10))
  chex.assert_trees_all_equal(many, one)
  many, one = _both(lambda: evaluate.pgd_accuracy(fn, jax.random.key(3), x, y, bounds=BOUNDS,
                                                  epsilon=0.2, step_size=0.05, num_steps=5,
                                                  batch_size=10))
  assert many == one


def _same_attack(many, one, atol=1e-5):
  print("successes", int(np.sum(many.success)), "of", len(many.success))
  assert 0 < int(np.sum(many.success))  # the comparison covers adversarial examples
  chex.assert_trees_all_equal(np.asarray(many.success), np.asarray(one.success))
  chex.assert_trees_all_close(np.asarray(many.adversarial), np.asarray(one.adversarial),
                              atol=atol)


def test_cw_l2_and_optmargin(fn, images):
  x, y = images
  kw = dict(bounds=BOUNDS, binary_search_steps=2, max_iterations=30, batch_size=10)
  for loop in ("host", "device"):
    _same_attack(*_both(lambda: attacks.carlini_wagner_l2(fn, x, y, loop=loop, **kw)))
  _same_attack(*_both(lambda: attacks.optmargin(fn, jax.random.key(1), x[:9], y[:9],
                                                epsilon=0.3, num_models=4, **kw)))


def test_deepfool_fgsm_bim_jsma_cw_linf(fn, images):
  x, y = images
  for loop in ("host", "device"):
    _same_attack(*_both(lambda: attacks.deepfool(fn, x, y, bounds=BOUNDS, loop=loop,
                                                 batch_size=10)))
  eps = np.linspace(0.05, 0.3, 6)
  _same_attack(*_both(lambda: attacks.fgsm_epsilon_search(fn, x, y, epsilons=eps,
                                                          bounds=BOUNDS, batch_size=10)))
  _same_attack(*_both(lambda: attacks.bim_epsilon_search(fn, x, y, epsilons=eps,
                                                         step_size=0.02, bounds=BOUNDS,
                                                         batch_size=10)))
  target = (y[:9] + 1) % 10
  _same_attack(*_both(lambda: attacks.jsma(fn, x[:9], target, bounds=BOUNDS, gamma=0.05,
                                           batch_size=5)))
  _same_attack(*_both(lambda: attacks.carlini_wagner_linf(
      fn, x[:9], y[:9], bounds=BOUNDS, max_iterations=20, initial_const=1e-2,
      largest_const=1.0, decrease_factor=0.5, batch_size=5)))


def test_region_votes_and_certify(fn, images):
  x, _ = images
  for n, batch in ((21, 200), (3, 4096)):
    many, one = _both(lambda: region.count_votes(fn, jax.random.key(2), x[:n], scale=0.3,
                                                 num_samples=50, bounds=BOUNDS,
                                                 batch_size=batch))
    chex.assert_trees_all_equal(np.asarray(many), np.asarray(one))
  many, one = _both(lambda: region.certify(fn, jax.random.key(4), x, noise="gaussian",
                                           scale=0.25, num_select=20, num_estimate=60,
                                           alpha=0.01, bounds=BOUNDS, batch_size=300))
  chex.assert_trees_all_equal(jax.tree.map(np.asarray, many), jax.tree.map(np.asarray, one))


def test_boundary_search(fn, images):
  x, _ = images
  d = directions.random_orthogonal(jax.random.key(5), 12, x.shape[1:])
  for method in ("scan", "fast"):
    many, one = _both(lambda: boundary.search(fn, x[:5], d, step=0.05, max_distance=2.0,
                                              bounds=BOUNDS, method=method, batch_size=36))
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, many), jax.tree.map(np.asarray, one))
    assert np.isfinite(np.asarray(many.distance)).any()  # the comparison covers crossings
