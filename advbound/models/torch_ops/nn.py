"""Layer ops of torch_import's table: matrix products, convolution, batch / layer / group norm
(eval batch norm from the running statistics), pooling (torch's windows: ceil_mode,
count_include_pad), padding, upsampling, softmax."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from advbound.models import pooling
from advbound.models.torch_ops import _channel_shape, _op, _tuple


# Matrix products.
@_op("mm.default", "bmm.default", "matmul.default")
def _mm(x, y):
  return jnp.matmul(x, y)


@_op("addmm.default")
def _addmm(bias, x, y, beta=1, alpha=1):
  out = jnp.matmul(x, y)
  out = out if alpha == 1 else alpha * out
  return out + (bias if beta == 1 else beta * bias)


@_op("linear.default")
def _linear(x, weight, bias=None):
  out = jnp.matmul(x, weight.T)
  return out if bias is None else out + bias


# Convolution, normalisation, pooling.
@_op("convolution.default")
def _convolution(x, weight, bias, stride, padding, dilation, transposed, output_padding,
                 groups):
  if transposed:
    raise NotImplementedError("transposed convolution (ConvTranspose) is not supported")
  k = x.ndim - 2
  spatial = "DHW"[-k:] if k <= 3 else None
  if spatial is None:
    raise NotImplementedError(f"convolution over {k} spatial dims")
  stride, padding, dilation = (_tuple(v, k) for v in (stride, padding, dilation))
  out = lax.conv_general_dilated(
      x, weight.astype(x.dtype), window_strides=stride, padding=[(p, p) for p in padding],
      rhs_dilation=dilation, feature_group_count=groups,
      dimension_numbers=("NC" + spatial, "OI" + spatial, "NC" + spatial))
  return out if bias is None else out + _channel_shape(bias, out.ndim).astype(out.dtype)


def _bn_affine(weight, bias, mean, var, eps):
  """Eval batch norm as y = x * scale + shift, per channel."""
  scale = lax.rsqrt(var.astype(jnp.float32) + eps)
  if weight is not None:
    scale = scale * weight
  shift = -mean * scale
  if bias is not None:
    shift = shift + bias
  return scale, shift


def _batch_norm(x, weight, bias, mean, var, eps):
  scale, shift = _bn_affine(weight, bias, mean, var, eps)
  return x * _channel_shape(scale, x.ndim).astype(x.dtype) + _channel_shape(
      shift, x.ndim).astype(x.dtype)


@_op("_native_batch_norm_legit_no_training.default")
def _bn_no_training(x, weight, bias, running_mean, running_var, momentum, eps):
  empty = jnp.zeros((0,), x.dtype)
  return _batch_norm(x, weight, bias, running_mean, running_var, eps), empty, empty


@_op("_native_batch_norm_legit.default", "native_batch_norm.default")
def _bn_legit(x, weight, bias, running_mean, running_var, training, momentum, eps):
  if training:
    raise NotImplementedError("batch norm in training mode (batch statistics): export the "
                              "module in eval mode")
  return _bn_no_training(x, weight, bias, running_mean, running_var, momentum, eps)


@_op("native_layer_norm.default")
def _layer_norm(x, normalized_shape, weight, bias, eps):
  axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
  mean = jnp.mean(x, axis=axes, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
  rstd = lax.rsqrt(var + eps)
  out = (x - mean) * rstd
  if weight is not None:
    out = out * weight
  if bias is not None:
    out = out + bias
  return out, mean, rstd


@_op("native_group_norm.default")
def _group_norm(x, weight, bias, n, c, hxw, group, eps):
  shape = x.shape
  g = x.reshape(shape[0], group, -1)
  mean = jnp.mean(g, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(g - mean), axis=-1, keepdims=True)
  rstd = lax.rsqrt(var + eps)
  out = ((g - mean) * rstd).reshape(shape)
  if weight is not None:
    out = out * _channel_shape(weight, x.ndim)
  if bias is not None:
    out = out + _channel_shape(bias, x.ndim)
  return out, mean[..., 0], rstd[..., 0]


def _pool_geometry(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool):
  """torch's output length and the extra right padding that ceil_mode needs."""
  span = size + 2 * p - d * (k - 1) - 1
  out = (span + (s - 1 if ceil_mode else 0)) // s + 1
  if ceil_mode and (out - 1) * s >= size + p:
    out -= 1  # the last window must start inside the input or its left padding
  extra = max(0, (out - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
  return out, extra


def _pool_args(kernel_size, stride, padding, dilation=1):
  kernel = tuple(kernel_size) if not isinstance(kernel_size, int) else (kernel_size,) * 2
  k = len(kernel)
  stride = _tuple(stride, k) if stride not in (None, [], ()) else kernel
  return k, kernel, stride, _tuple(padding, k), _tuple(dilation, k)


def _spatial(x, k: int, channels_last: bool) -> tuple[int, ...]:
  """The axes of the last k (logical) spatial dims of x's storage."""
  first = x.ndim - k - (1 if channels_last else 0)
  return tuple(range(first, first + k))


def _window(x, axes, values, fill):
  """A per-axis tuple over x's dims: values[i] on axes[i], `fill` elsewhere."""
  out = [fill] * x.ndim
  for a, v in zip(axes, values):
    out[a] = v
  return tuple(out)


def _max_pool(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False, *,
              channels_last=False):
  k, kernel, stride, padding, dilation = _pool_args(kernel_size, stride, padding, dilation)
  axes = _spatial(x, k, channels_last)
  pads = []
  for i, a in enumerate(axes):
    _, extra = _pool_geometry(x.shape[a], kernel[i], stride[i], padding[i], dilation[i],
                              ceil_mode)
    pads.append((padding[i], padding[i] + extra))
  if (stride == kernel and all(p == (0, 0) for p in pads) and all(d == 1 for d in dilation)):
    # tiling windows: the same values and gradient without select-and-scatter (slow on CPU)
    return pooling.window_max(x, axes, kernel)
  init = -np.inf if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.iinfo(x.dtype).min
  # a concrete identity init makes this JAX's differentiable reduce_window_max
  return lax.reduce_window(x, np.array(init, x.dtype), lax.max, _window(x, axes, kernel, 1),
                           _window(x, axes, stride, 1), _window(x, axes, pads, (0, 0)),
                           window_dilation=_window(x, axes, dilation, 1))


@_op("max_pool2d_with_indices.default", "max_pool3d_with_indices.default")
def _max_pool_with_indices(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
  return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode), None


@_op("max_pool2d.default", "max_pool1d.default", "max_pool3d.default")
def _max_pool_plain(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
  return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode)


@_op("avg_pool1d.default", "avg_pool2d.default", "avg_pool3d.default")
def _avg_pool(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
              divisor_override=None, *, channels_last=False):
  k, kernel, stride, padding, _ = _pool_args(kernel_size, stride, padding)
  axes = _spatial(x, k, channels_last)
  pads = []
  divisor = np.ones((1,) * x.ndim, np.float32)
  for i, a in enumerate(axes):
    size = x.shape[a]
    out, extra = _pool_geometry(size, kernel[i], stride[i], padding[i], 1, ceil_mode)
    pads.append((padding[i], padding[i] + extra))
    start = np.arange(out) * stride[i] - padding[i]
    end = np.minimum(start + kernel[i], size + padding[i])
    if not count_include_pad:  # torch's divisor: the window inside the (padded) input
      start, end = np.maximum(start, 0), np.minimum(end, size)
    divisor = divisor * (end - start).astype(np.float32).reshape(_window(x, [a], [out], 1))
  total = lax.reduce_window(x, np.array(0, x.dtype), lax.add, _window(x, axes, kernel, 1),
                            _window(x, axes, stride, 1), _window(x, axes, pads, (0, 0)))
  if divisor_override:
    return total / divisor_override
  return total / jnp.asarray(divisor, x.dtype)


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
  """[out, size] averaging weights of torch's adaptive pooling bins
  (start floor(i*size/out), end ceil((i+1)*size/out))."""
  m = np.zeros((out, size), np.float32)
  for i in range(out):
    start, end = (i * size) // out, -((-(i + 1) * size) // out)
    m[i, start:end] = 1.0 / (end - start)
  return m


def _along(x, axis: int, m: np.ndarray):
  """x with its `axis` mapped through the matrix m [out, size]."""
  m = jnp.asarray(m, x.dtype)
  return jnp.moveaxis(jnp.tensordot(x, m, axes=[[axis], [1]]), -1, axis)


@_op("_adaptive_avg_pool2d.default", "adaptive_avg_pool2d.default",
     "_adaptive_avg_pool3d.default", "adaptive_avg_pool1d.default")
def _adaptive_avg_pool(x, output_size, *, channels_last=False):
  axes = _spatial(x, len(output_size), channels_last)
  for axis, out in zip(axes, output_size):
    size = x.shape[axis]
    out = size if out is None else out
    if size % out == 0:  # equal bins: a reshape and a mean
      shape = x.shape[:axis] + (out, size // out) + x.shape[axis + 1:]
      x = jnp.mean(x.reshape(shape), axis=axis + 1)
    else:
      x = _along(x, axis, _adaptive_matrix(size, out))
  return x


@_op("adaptive_max_pool2d.default")
def _adaptive_max_pool(x, output_size):
  for axis, out in zip(_spatial(x, len(output_size), False), output_size):
    size = x.shape[axis]
    parts = [lax.slice_in_dim(x, (j * size) // out, -((-(j + 1) * size) // out), axis=axis)
             for j in range(out)]
    x = jnp.stack([jnp.max(p, axis=axis) for p in parts], axis=axis)
  return x, None


@_op("constant_pad_nd.default")
def _constant_pad(x, pad, value=0, *, axis=lambda a, r: a):
  config = [(0, 0, 0)] * x.ndim
  for i in range(len(pad) // 2):
    config[axis(x.ndim - 1 - i, x.ndim)] = (pad[2 * i], pad[2 * i + 1], 0)
  return lax.pad(x, jnp.asarray(value, x.dtype), config)


def _mode_pad(mode):
  def pad(x, padding):
    widths = [(0, 0)] * x.ndim
    for i in range(len(padding) // 2):
      widths[x.ndim - 1 - i] = (padding[2 * i], padding[2 * i + 1])
    return jnp.pad(x, widths, mode=mode)
  return pad


for _k in (1, 2, 3):
  _op(f"reflection_pad{_k}d.default")(_mode_pad("reflect"))
  _op(f"replication_pad{_k}d.default")(_mode_pad("edge"))


def _upsample_sizes(x, output_size, scale_factors):
  """(axes, output sizes, scales) of torch's upsampling of the last k dims."""
  k = len(output_size) if output_size else len(scale_factors)
  axes = tuple(range(x.ndim - k, x.ndim))
  if output_size:
    return axes, list(output_size), [None] * k
  return (axes, [int(math.floor(x.shape[a] * f)) for a, f in zip(axes, scale_factors)],
          list(scale_factors))


@_op("upsample_nearest2d.vec", "upsample_nearest1d.vec", "upsample_nearest3d.vec")
def _upsample_nearest(x, output_size, scale_factors):
  axes, sizes, scales = _upsample_sizes(x, output_size, scale_factors)
  for axis, out, scale in zip(axes, sizes, scales):
    size = x.shape[axis]
    ratio = np.float32(1.0 / scale) if scale else np.float32(size / out)
    index = np.minimum(np.floor(np.arange(out, dtype=np.float32) * ratio).astype(np.int32),
                       size - 1)
    x = jnp.take(x, index, axis=axis)
  return x


@_op("upsample_nearest2d.default")
def _upsample_nearest_default(x, output_size, scales_h=None, scales_w=None):
  return _upsample_nearest(x, output_size, None)


def _linear_matrix(size: int, out: int, align_corners: bool, scale) -> np.ndarray:
  """[out, size] weights of torch's (bi)linear interpolation along one axis."""
  dst = np.arange(out, dtype=np.float64)
  if align_corners:
    src = dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
  else:
    ratio = 1.0 / scale if scale else size / out
    src = np.maximum(ratio * (dst + 0.5) - 0.5, 0.0)
  lo = np.minimum(np.floor(src).astype(np.int64), size - 1)
  hi = np.minimum(lo + 1, size - 1)
  frac = (src - lo).astype(np.float32)
  m = np.zeros((out, size), np.float32)
  np.add.at(m, (np.arange(out), lo), 1.0 - frac)
  np.add.at(m, (np.arange(out), hi), frac)
  return m


@_op("upsample_bilinear2d.vec", "upsample_linear1d.vec")
def _upsample_bilinear(x, output_size, align_corners, scale_factors):
  axes, sizes, scales = _upsample_sizes(x, output_size, scale_factors)
  for axis, out, scale in zip(axes, sizes, scales):
    x = _along(x, axis, _linear_matrix(x.shape[axis], out, align_corners, scale))
  return x


@_op("upsample_bilinear2d.default")
def _upsample_bilinear_default(x, output_size, align_corners, scales_h=None, scales_w=None):
  return _upsample_bilinear(x, output_size, align_corners,
                            [scales_h, scales_w] if scales_h else None)


# Softmax.
@_op("_softmax.default", "softmax.int")
def _softmax(x, dim, half_to_float=False):
  return jax.nn.softmax(x, axis=dim)


@_op("_log_softmax.default", "log_softmax.int")
def _log_softmax(x, dim, half_to_float=False):
  return jax.nn.log_softmax(x, axis=dim)

