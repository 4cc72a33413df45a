"""window_max / max_pool against lax.reduce_window (JAX's own max pooling and its
select-and-scatter gradient) and, where torch is installed, torch's max_pool2d backward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from advbound.models import pooling


def _reference(x, axes, window):
  dims = [1] * x.ndim
  for a, k in zip(axes, window):
    dims[a] = k
  return lax.reduce_window(x, -jnp.inf, lax.max, tuple(dims), tuple(dims), "VALID")


@pytest.mark.parametrize("shape,axes,window", [
    ((3, 8, 8, 4), (1, 2), (2, 2)),     # our CNNs' pool
    ((2, 9, 7, 3), (1, 2), (3, 2)),     # uneven windows, remainders dropped
    ((2, 4, 6, 6), (-2, -1), (2, 3)),   # channels-first (torch's layout)
    ((2, 10, 5), (1,), (4,)),           # 1-D
    ((1, 4, 4, 4, 2), (1, 2, 3), (2, 2, 2)),  # 3-D
])
def test_values_and_gradient_equal_reduce_window(shape, axes, window):
  rng = np.random.default_rng(0)
  # few distinct values: many ties inside windows, where the routing of the gradient matters
  x = jnp.asarray(rng.integers(-2, 3, size=shape).astype(np.float32))
  cot = jnp.asarray(rng.normal(size=_reference(x, axes, window).shape).astype(np.float32))
  ours = pooling.window_max(x, axes, window)
  np.testing.assert_array_equal(ours, _reference(x, axes, window))
  g_ours = jax.grad(lambda v: jnp.sum(pooling.window_max(v, axes, window) * cot))(x)
  g_ref = jax.grad(lambda v: jnp.sum(_reference(v, axes, window) * cot))(x)
  np.testing.assert_array_equal(g_ours, g_ref)
  assert np.sum(np.asarray(g_ours) != 0) > 0


def test_max_pool_matches_flax_on_every_geometry():
  from flax import nnx  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 9, 9, 3)).astype(np.float32))
  for window, strides, padding in [((2, 2), None, "VALID"), ((2, 2), (2, 2), "VALID"),
                                   ((3, 3), (1, 1), "VALID"), ((2, 2), (2, 2), "SAME")]:
    np.testing.assert_array_equal(pooling.max_pool(x, window, strides, padding),
                                  nnx.max_pool(x, window, strides=strides, padding=padding))


def test_bad_axes_name_them():
  with pytest.raises(ValueError, match=r"axes \(1, 1\)"):
    pooling.window_max(jnp.zeros((2, 4, 4)), (1, 1), (2, 2))


def test_gradient_matches_torch_max_pool2d():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(2)
  x = rng.integers(0, 3, size=(2, 3, 8, 6)).astype(np.float32)  # NCHW, ties
  cot = rng.normal(size=(2, 3, 4, 3)).astype(np.float32)
  xt = torch.from_numpy(x).requires_grad_(True)
  (torch.nn.functional.max_pool2d(xt, 2) * torch.from_numpy(cot)).sum().backward()
  g = jax.grad(lambda v: jnp.sum(pooling.window_max(v, (2, 3), (2, 2)) * cot))(jnp.asarray(x))
  np.testing.assert_array_equal(g, xt.grad.numpy())


def test_forward_mode_equals_reduce_window_and_no_select_and_scatter():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 8, 6, 3)).astype(np.float32))  # no ties
  t = jnp.asarray(rng.normal(size=x.shape).astype(np.float32))
  f = lambda v: pooling.window_max(v, (1, 2), (2, 2))
  y, ty = jax.jvp(f, (x,), (t,))
  y_ref, ty_ref = jax.jvp(lambda v: _reference(v, (1, 2), (2, 2)), (x,), (t,))
  np.testing.assert_array_equal(y, y_ref)
  np.testing.assert_array_equal(ty, ty_ref)
  # the point of the module: the input gradient never meets select-and-scatter, and the forward
  # is reduce_window's kernel (a forward through argmax + select was ~17x slower on XLA:CPU)
  grad = jax.jit(jax.grad(lambda v: jnp.sum(f(v))))
  assert "select_and_scatter" not in grad.lower(x).as_text()
  assert "reduce_window" in jax.jit(f).lower(x).as_text()


def test_integer_inputs_take_the_window_maximum():
  x = np.random.default_rng(4).integers(-50, 50, size=(2, 6, 4, 3)).astype(np.int32)
  expected = x.reshape(2, 3, 2, 2, 2, 3).max(axis=(2, 4))
  np.testing.assert_array_equal(pooling.window_max(jnp.asarray(x), (1, 2), (2, 2)), expected)
