"""Tests of advbound/runtime/sharding.py: the one-device identities here, and the sharded kernels on
8 fake CPU devices in a subprocess (tests/sharded_cases.py) compared with one device's results."""

import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advbound.runtime import batching, sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_one_device_helpers_are_identities():
  assert jax.device_count() == 1  # the default test process: the sharded cases run below
  assert not sharding.is_sharded() and sharding.num_devices() == 1
  tree = {"w": jnp.ones((2, 3)), "b": np.zeros(3)}
  assert sharding.replicate(tree) is tree
  a = np.arange(6.0).reshape(3, 2)
  chex.assert_trees_all_equal(np.asarray(sharding.put_batch(a)), a)
  assert sharding.round_up(5) == 5 and sharding.round_up(0) == 1
  np.testing.assert_array_equal(sharding.to_host(jnp.asarray(a)), a)
  assert sharding.is_writer()


def test_pad_rows_repeats_the_last_row_and_rejects_bad_sizes():
  a = np.arange(6.0).reshape(3, 2)
  np.testing.assert_array_equal(sharding.pad_rows(a, 5), np.concatenate([a, a[2:], a[2:]]))
  assert sharding.pad_rows(a, 3) is a
  with pytest.raises(ValueError, match="cannot pad 3 rows to 2"):
    sharding.pad_rows(a, 2)
  with pytest.raises(ValueError, match="cannot pad 0 rows"):
    sharding.pad_rows(a[:0], 2)


def test_use_devices_needs_a_device_and_restores_the_mesh():
  with pytest.raises(ValueError, match="at least one device"):
    with sharding.use_devices([]):
      pass
  with sharding.use_devices(jax.devices()):
    assert sharding.mesh().shape == {"data": 1}
  assert sharding.devices() == jax.devices()


def test_map_chunks_compiles_once_per_chunk_shape():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def double(a):
    return 2 * a

  x = np.arange(23.0).reshape(23, 1)
  np.testing.assert_array_equal(batching.map_chunks(double, x, chunk_size=5), 2 * x)


def test_sharded_kernels_on_8_devices_equal_one_device():
  """Runs tests/sharded_cases.py with 8 CPU devices: training, predict and PGD accuracy, CW-L2,
  OPTMARGIN, DeepFool, FGSM / BIM searches, JSMA, CW-L-inf, region votes and certification,
  boundary scan / fast, each against the same computation on one device of that process."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
       os.path.join(ROOT, "tests", "sharded_cases.py")],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
  assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
