"""Max pooling whose input gradient is cheap on every backend.

JAX differentiates `lax.reduce_window(max)` (what `flax.nnx.max_pool` and a torch
`max_pool2d` become) into XLA's select-and-scatter, which XLA:CPU runs with a slow generic
kernel: on the 4-conv CIFAR CNN of `benchmarks/autoattack.py`, its two 2x2 pools made the input
gradient of 50 images take ~100 ms where the same network without them takes ~30 ms (torch:
~35 ms). Every gradient attack pays that on CPU.

For windows that tile the input (stride = window, no padding, no dilation: the 2x2 pools of
our CNNs and most imported ones) `window_max` computes the same maximum from a reshape, and
routes the gradient to the first maximum of each window (in row-major window order) through an
elementwise select: the routing of select-and-scatter (`ge` selection keeps the first maximum)
and of torch's `max_pool2d` backward, so values and gradients are those of `reduce_window`,
exactly. Other geometries fall back to `flax.nnx.max_pool` / `lax.reduce_window`.
"""

from __future__ import annotations

from collections.abc import Sequence

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

__all__ = ["window_max", "max_pool"]


def _checked(x: jax.Array, axes: Sequence[int], window: Sequence[int]):
  axes = tuple(int(a) % x.ndim for a in axes)
  window = tuple(int(k) for k in window)
  if len(axes) != len(window) or len(set(axes)) != len(axes) or min(window, default=1) < 1:
    raise ValueError(f"window_max needs distinct axes and windows >= 1 of the same length, got "
                     f"axes {axes} and window {window}")
  return axes, window


def _windows(x: jax.Array, axes: tuple[int, ...], window: tuple[int, ...]) -> jax.Array:
  """x's tiling windows gathered on a last axis: [..., D_a // k_a, ..., prod(window)], the
  offsets row-major (a remainder shorter than a window dropped). Reshapes and a transpose:
  linear, and transposed into reshapes and a transpose."""
  crop = tuple(slice(0, x.shape[d] // window[axes.index(d)] * window[axes.index(d)])
               if d in axes else slice(None) for d in range(x.ndim))
  x = x[crop]
  shape, kept, offsets = [], [], []
  for d, size in enumerate(x.shape):
    if d in axes:
      k = window[axes.index(d)]
      kept.append(len(shape))
      offsets.append(len(shape) + 1)
      shape += [size // k, k]
    else:
      kept.append(len(shape))
      shape.append(size)
  w = jnp.transpose(x.reshape(shape), kept + offsets)
  return w.reshape(w.shape[:len(kept)] + (-1,))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _tiled_max(x: jax.Array, axes: tuple[int, ...], window: tuple[int, ...]) -> jax.Array:
  if jnp.issubdtype(x.dtype, jnp.floating):
    dims = tuple(window[axes.index(d)] if d in axes else 1 for d in range(x.ndim))
    return lax.reduce_window(x, jnp.array(-jnp.inf, x.dtype), lax.max, dims, dims, "VALID")
  return jnp.max(_windows(x, axes, window), axis=-1)


@_tiled_max.defjvp
def _tiled_max_jvp(axes, window, primals, tangents):
  (x,), (t,) = primals, tangents
  first = jax.nn.one_hot(jnp.argmax(_windows(x, axes, window), axis=-1),
                         math.prod(window), dtype=bool)  # argmax: the first maximum
  tw = _windows(t, axes, window)
  return (_tiled_max(x, axes, window),
          jnp.sum(jnp.where(first, tw, jnp.zeros((), tw.dtype)), axis=-1))


def window_max(x: jax.Array, axes: Sequence[int], window: Sequence[int]) -> jax.Array:
  """Maximum over the non-overlapping windows that tile `axes` of x (VALID: a remainder shorter
  than a window is dropped, as reduce_window with stride = window).

  The value is reduce_window's (XLA's fast forward kernel; a forward through the windows'
  argmax and a select costs ~17x more on XLA:CPU: region votes of the C&W MNIST network,
  `benchmarks/pooling.py`). The derivative is a custom JVP: the tangent of each window's first
  maximum, a select that transposes into elementwise work, so the input gradient never meets
  select-and-scatter.

  Args:
    x: array [..., D_a, ...] of any dtype.
    axes: the pooled axes (distinct; negative values count from the end).
    window: window length along each of `axes` (>= 1).

  Returns:
    x's shape with D_a replaced by D_a // window_a. The gradient of an output goes to the first
    maximum of its window (row-major over the window's offsets), as reduce_window's.
  """
  axes, window = _checked(x, axes, window)
  return _tiled_max(x, axes, window)


def max_pool(x: jax.Array, window_shape: Sequence[int], strides: Sequence[int] | None = None,
             padding: str = "VALID") -> jax.Array:
  """`flax.nnx.max_pool` (inputs [N, *spatial, C], the window over the spatial axes) with the
  fast tiling path of `window_max` where strides = window and padding is VALID (strides=None
  is flax's default, stride 1)."""
  window_shape = tuple(window_shape)
  if strides is not None and tuple(strides) == window_shape and padding == "VALID":
    return window_max(x, range(1, 1 + len(window_shape)), window_shape)
  return nnx.max_pool(x, window_shape, strides=strides, padding=padding)
