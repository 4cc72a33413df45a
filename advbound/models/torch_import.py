"""PyTorch classifiers as pure JAX functions: our own interpreter of torch.export graphs.

`from_torch(module, input_shape=(3, 32, 32))` exports the module (eval mode, a dynamic batch
dimension), decomposes the program to core ATen, checks that every op of the graph has a JAX
translation here (an unknown one raises NotImplementedError naming the op and the node, before
anything is traced), and returns an `advbound.models.Imported` whose `apply(params, x)` walks the
graph once per trace, mapping each ATen op to jax.numpy / jax.lax. The parameters, buffers and
lifted constants are the `params` dict (keyed by their torch names, float32; integer and bool
buffers keep an integer / bool dtype), so jit sees them as arguments and `sharding.replicate`
copies them like our own models' state.

Images come in NHWC (our data's layout) and are transposed to the module's layout (NCHW unless
`layout="NHWC"`). torch's semantics are kept op by op: eval batch norm from the running
statistics, dropout off (export in eval mode removes it), torch's pooling windows (ceil_mode,
count_include_pad), and torch's subgradients at kinks (relu, hardtanh, clamp, leaky_relu), so
input gradients equal torch autograd's.

torchax (torch -> JAX) was the obvious tool, but its 0.0.13 release fails at import with the
CPU torch 2.13 wheel ("The underlying op of 'aten.prod' has no overload name 'dim_Dimname'"),
hence this converter over the core ATen op set.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from advbound.models.imported import Imported

__all__ = ["from_torch", "export", "Graph", "supported_ops"]

LAYOUTS = ("NCHW", "NHWC")

# ----------------------------------------------------------------------------------------------
# The op table: "aten.<name>.<overload>" -> a function of the op's arguments in schema order
# (defaults filled in from the schema), returning a jax value (or a tuple, for multi-output ops).

_OPS: dict[str, Callable[..., Any]] = {}


def _op(*names: str):
  def register(fn):
    for name in names:
      _OPS["aten." + name] = fn
    return fn
  return register


def supported_ops() -> list[str]:
  """The ATen ops (name.overload) the interpreter translates."""
  return sorted(_OPS)


def _dims(dim, ndim: int) -> tuple[int, ...] | None:
  """torch's reduction `dim` (int, list, [] or None: every dim) as a tuple of axes, or None."""
  if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
    return None
  dims = (dim,) if isinstance(dim, int) else tuple(dim)
  return tuple(d % max(ndim, 1) for d in dims)


def _channel_shape(v, ndim: int):
  """A per-channel vector [C] broadcast against [N, C, *spatial]."""
  return jnp.reshape(v, (1, -1) + (1,) * (ndim - 2))


def _float(x):
  return x if jnp.issubdtype(jnp.result_type(x), jnp.inexact) else jnp.asarray(x, jnp.float32)


# Elementwise, one argument: float functions (integer inputs computed in float32, as torch
# promotes them), then those that keep the dtype.
for _name, _fn in {
    "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "exp": jnp.exp, "exp2": jnp.exp2,
    "log": jnp.log, "log2": jnp.log2, "log10": jnp.log10, "log1p": jnp.log1p,
    "expm1": jnp.expm1, "sqrt": jnp.sqrt, "rsqrt": lax.rsqrt, "reciprocal": jnp.reciprocal,
    "sin": jnp.sin, "cos": jnp.cos, "tan": jnp.tan, "erf": jax.scipy.special.erf,
    "erfc": jax.scipy.special.erfc, "atan": jnp.arctan, "asin": jnp.arcsin,
    "acos": jnp.arccos, "sinh": jnp.sinh, "cosh": jnp.cosh,
}.items():
  _op(f"{_name}.default")(lambda x, _f=_fn: _f(_float(x)))
for _name, _fn in {
    "neg": jnp.negative, "abs": jnp.abs, "sign": jnp.sign, "sgn": jnp.sign,
    "floor": jnp.floor, "ceil": jnp.ceil, "round": jnp.round, "trunc": jnp.trunc,
    "logical_not": jnp.logical_not, "bitwise_not": jnp.invert, "isnan": jnp.isnan,
    "isinf": jnp.isinf,
}.items():
  _op(f"{_name}.default")(lambda x, _f=_fn: _f(x))


@_op("relu.default")
def _relu(x):
  return jnp.where(x > 0, x, jnp.zeros_like(x))  # torch: gradient 0 at 0


@_op("gelu.default")
def _gelu(x, approximate="none"):
  return jax.nn.gelu(x, approximate=(approximate == "tanh"))


@_op("silu.default")
def _silu(x):
  return x * jax.nn.sigmoid(x)


@_op("hardsigmoid.default")
def _hardsigmoid(x):
  return _hardtanh(x / 6 + 0.5, 0.0, 1.0)


@_op("hardswish.default")
def _hardswish(x):
  return x * jnp.clip(x + 3, 0, 6) / 6


@_op("mish.default")
def _mish(x):
  return x * jnp.tanh(_softplus(x))


@_op("softplus.default")
def _softplus(x, beta=1.0, threshold=20.0):
  bx = x * beta
  return jnp.where(bx > threshold, x, jnp.log1p(jnp.exp(jnp.minimum(bx, threshold))) / beta)


@_op("elu.default")
def _elu(x, alpha=1.0, scale=1.0, input_scale=1.0):
  neg = alpha * jnp.expm1(jnp.minimum(x, 0) * input_scale)
  return scale * jnp.where(x > 0, x, neg)


@_op("leaky_relu.default")
def _leaky_relu(x, negative_slope=0.01):
  return jnp.where(x > 0, x, x * negative_slope)  # torch: slope at 0


@_op("_prelu_kernel.default")
def _prelu(x, weight):
  w = _channel_shape(weight, x.ndim) if x.ndim >= 2 and weight.size > 1 else weight
  return jnp.where(x > 0, x, x * w)


@_op("hardtanh.default")
def _hardtanh(x, min_val=-1.0, max_val=1.0):
  # torch: gradient 1 strictly inside, 0 at and beyond the bounds
  return jnp.where(x <= min_val, jnp.asarray(min_val, x.dtype),
                   jnp.where(x >= max_val, jnp.asarray(max_val, x.dtype), x))


@_op("clamp.default", "clamp.Tensor")
def _clamp(x, min=None, max=None):  # pylint: disable=redefined-builtin
  # torch: gradient 1 where min <= x <= max (inclusive), 0 outside
  if min is not None:
    x = jnp.where(x < min, jnp.asarray(min, x.dtype), x)
  if max is not None:
    x = jnp.where(x > max, jnp.asarray(max, x.dtype), x)
  return x


@_op("clamp_min.default", "clamp_min.Tensor")
def _clamp_min(x, min):  # pylint: disable=redefined-builtin
  return _clamp(x, min, None)


@_op("clamp_max.default", "clamp_max.Tensor")
def _clamp_max(x, max):  # pylint: disable=redefined-builtin
  return _clamp(x, None, max)


@_op("threshold.default")
def _threshold(x, threshold, value):
  return jnp.where(x > threshold, x, jnp.asarray(value, x.dtype))


# Elementwise, two arguments.
@_op("add.Tensor", "add.Scalar")
def _add(x, y, alpha=1):
  return x + (y if alpha == 1 else y * alpha)


@_op("sub.Tensor", "sub.Scalar")
def _sub(x, y, alpha=1):
  return x - (y if alpha == 1 else y * alpha)


@_op("rsub.Tensor", "rsub.Scalar")
def _rsub(x, y, alpha=1):
  return y - (x if alpha == 1 else x * alpha)


@_op("mul.Tensor", "mul.Scalar")
def _mul(x, y):
  return x * y


@_op("div.Tensor", "div.Scalar")
def _div(x, y):
  return jnp.true_divide(x, y)


@_op("div.Tensor_mode", "div.Scalar_mode")
def _div_mode(x, y, rounding_mode=None):
  q = jnp.true_divide(x, y)
  if rounding_mode == "trunc":
    q = jnp.trunc(q)
  elif rounding_mode == "floor":
    q = jnp.floor_divide(x, y)
  ints = all(jnp.issubdtype(jnp.result_type(a), jnp.integer) for a in (x, y))
  return q.astype(jnp.result_type(x, y)) if ints and rounding_mode else q


@_op("floor_divide.default", "floor_divide.Scalar")
def _floor_divide(x, y):
  return jnp.floor_divide(x, y)


@_op("remainder.Tensor", "remainder.Scalar")
def _remainder(x, y):
  return jnp.remainder(x, y)


@_op("fmod.Tensor", "fmod.Scalar")
def _fmod(x, y):
  return jnp.fmod(x, y)


@_op("pow.Tensor_Scalar", "pow.Tensor_Tensor")
def _pow(x, exponent):
  if isinstance(exponent, int) and not isinstance(exponent, bool) and 0 <= exponent <= 4:
    return lax.integer_pow(x, exponent)  # x ** 2 etc.: exact, and the gradient of torch
  return jnp.power(x, exponent)


@_op("pow.Scalar")
def _pow_scalar(base, exponent):
  return jnp.power(base, _float(exponent))


for _name, _fn in {
    "maximum": jnp.maximum, "minimum": jnp.minimum, "atan2": jnp.arctan2,
    "eq": jnp.equal, "ne": jnp.not_equal, "lt": jnp.less, "le": jnp.less_equal,
    "gt": jnp.greater, "ge": jnp.greater_equal, "logical_and": jnp.logical_and,
    "logical_or": jnp.logical_or, "logical_xor": jnp.logical_xor,
    "bitwise_and": jnp.bitwise_and, "bitwise_or": jnp.bitwise_or,
    "bitwise_xor": jnp.bitwise_xor,
}.items():
  for _overload in ("Tensor", "Scalar", "default"):
    _op(f"{_name}.{_overload}")(lambda x, y, _f=_fn: _f(x, y))


@_op("where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar")
def _where(condition, x, y):
  return jnp.where(condition, x, y)


@_op("masked_fill.Scalar", "masked_fill.Tensor")
def _masked_fill(x, mask, value):
  return jnp.where(mask, jnp.asarray(value, x.dtype), x)


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


def _tuple(v, k: int) -> tuple[int, ...]:
  v = (v,) if isinstance(v, int) else tuple(v)
  return v * k if len(v) == 1 else v


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


# Softmax and reductions.
@_op("_softmax.default", "softmax.int")
def _softmax(x, dim, half_to_float=False):
  return jax.nn.softmax(x, axis=dim)


@_op("_log_softmax.default", "log_softmax.int")
def _log_softmax(x, dim, half_to_float=False):
  return jax.nn.log_softmax(x, axis=dim)


@_op("mean.dim")
def _mean(x, dim, keepdim=False, dtype=None):
  return jnp.mean(_float(x) if dtype is None else x.astype(dtype), axis=_dims(dim, x.ndim),
                  keepdims=keepdim)


@_op("mean.default")
def _mean_all(x, dtype=None):
  return _mean(x, None, False, dtype)


@_op("sum.dim_IntList")
def _sum(x, dim, keepdim=False, dtype=None):
  return jnp.sum(x, axis=_dims(dim, x.ndim), keepdims=keepdim, dtype=dtype)


@_op("sum.default")
def _sum_all(x, dtype=None):
  return jnp.sum(x, dtype=dtype)


@_op("prod.dim_int")
def _prod(x, dim, keepdim=False, dtype=None):
  return jnp.prod(x, axis=dim, keepdims=keepdim, dtype=dtype)


@_op("amax.default")
def _amax(x, dim=(), keepdim=False):
  return jnp.max(x, axis=_dims(dim, x.ndim), keepdims=keepdim)


@_op("amin.default")
def _amin(x, dim=(), keepdim=False):
  return jnp.min(x, axis=_dims(dim, x.ndim), keepdims=keepdim)


@_op("max.dim")
def _max_dim(x, dim, keepdim=False):
  return jnp.max(x, axis=dim, keepdims=keepdim), jnp.argmax(x, axis=dim, keepdims=keepdim)


@_op("min.dim")
def _min_dim(x, dim, keepdim=False):
  return jnp.min(x, axis=dim, keepdims=keepdim), jnp.argmin(x, axis=dim, keepdims=keepdim)


@_op("max.default")
def _max_all(x):
  return jnp.max(x)


@_op("min.default")
def _min_all(x):
  return jnp.min(x)


@_op("argmax.default")
def _argmax(x, dim=None, keepdim=False):
  return jnp.argmax(x, axis=dim, keepdims=keepdim)


@_op("argmin.default")
def _argmin(x, dim=None, keepdim=False):
  return jnp.argmin(x, axis=dim, keepdims=keepdim)


@_op("any.dim", "any.dims", "any.default")
def _any(x, dim=None, keepdim=False):
  return jnp.any(x, axis=_dims(dim, x.ndim), keepdims=keepdim)


@_op("all.dim", "all.dims", "all.default")
def _all(x, dim=None, keepdim=False):
  return jnp.all(x, axis=_dims(dim, x.ndim), keepdims=keepdim)


@_op("var.correction")
def _var(x, dim=None, correction=None, keepdim=False):
  ddof = 1 if correction is None else correction
  return jnp.var(x, axis=_dims(dim, x.ndim), ddof=ddof, keepdims=keepdim)


@_op("std.correction")
def _std(x, dim=None, correction=None, keepdim=False):
  return jnp.sqrt(_var(x, dim, correction, keepdim))


@_op("var_mean.correction")
def _var_mean(x, dim=None, correction=None, keepdim=False):
  return _var(x, dim, correction, keepdim), _mean(x, dim, keepdim)


@_op("linalg_vector_norm.default")
def _vector_norm(x, ord=2.0, dim=None, keepdim=False,  # pylint: disable=redefined-builtin
                 dtype=None):
  x = x if dtype is None else x.astype(dtype)
  axes = _dims(dim, x.ndim)
  if ord == 2:
    return jnp.sqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=keepdim))
  if ord == math.inf:
    return jnp.max(jnp.abs(x), axis=axes, keepdims=keepdim)
  if ord == 1:
    return jnp.sum(jnp.abs(x), axis=axes, keepdims=keepdim)
  return jnp.sum(jnp.abs(x) ** ord, axis=axes, keepdims=keepdim) ** (1.0 / ord)


@_op("logsumexp.default")
def _logsumexp(x, dim, keepdim=False):
  return jax.scipy.special.logsumexp(x, axis=_dims(dim, x.ndim), keepdims=keepdim)


@_op("cumsum.default")
def _cumsum(x, dim, dtype=None):
  return jnp.cumsum(x, axis=dim, dtype=dtype)


# Shapes and copies.
@_op("view.default", "_unsafe_view.default", "reshape.default", "view_copy.default")
def _view(x, size):
  return jnp.reshape(x, tuple(size))


@_op("permute.default", "permute_copy.default")
def _permute(x, dims):
  return jnp.transpose(x, tuple(dims))


@_op("transpose.int")
def _transpose(x, dim0, dim1):
  return jnp.swapaxes(x, dim0, dim1)


@_op("t.default")
def _t(x):
  return x.T


@_op("expand.default", "expand_copy.default")
def _expand(x, size, implicit=False):
  lead = len(size) - x.ndim
  shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(size))
  return jnp.broadcast_to(x, shape)


@_op("squeeze.dim", "squeeze.dims", "squeeze.default", "squeeze_copy.dims")
def _squeeze(x, dim=None):
  axes = range(x.ndim) if dim is None else _dims(dim, x.ndim) or ()
  return jnp.squeeze(x, axis=tuple(a for a in axes if x.shape[a] == 1))


@_op("unsqueeze.default", "unsqueeze_copy.default")
def _unsqueeze(x, dim):
  return jnp.expand_dims(x, dim)


@_op("cat.default")
def _cat(tensors, dim=0):
  tensors = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or tensors[:1]
  return jnp.concatenate(tensors, axis=dim)


@_op("stack.default")
def _stack(tensors, dim=0):
  return jnp.stack(tensors, axis=dim)


@_op("slice.Tensor", "slice_copy.Tensor")
def _slice(x, dim=0, start=None, end=None, step=1):
  index = [slice(None)] * x.ndim
  index[dim] = slice(start, end, step)
  return x[tuple(index)]


@_op("select.int", "select_copy.int")
def _select(x, dim, index):
  return lax.index_in_dim(x, index % x.shape[dim], axis=dim, keepdims=False)


@_op("split_with_sizes.default", "split_with_sizes_copy.default")
def _split_with_sizes(x, split_sizes, dim=0):
  return jnp.split(x, np.cumsum(split_sizes)[:-1].tolist(), axis=dim)


@_op("split.Tensor", "split_copy.Tensor")
def _split(x, split_size, dim=0):
  size = x.shape[dim]
  return jnp.split(x, list(range(split_size, size, split_size)), axis=dim)


@_op("unbind.int", "unbind_copy.int")
def _unbind(x, dim=0):
  return [lax.index_in_dim(x, i, axis=dim, keepdims=False) for i in range(x.shape[dim])]


@_op("flatten.using_ints")
def _flatten(x, start_dim=0, end_dim=-1):
  start, end = start_dim % max(x.ndim, 1), end_dim % max(x.ndim, 1)
  return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])


@_op("flip.default")
def _flip(x, dims):
  return jnp.flip(x, axis=tuple(dims))


@_op("roll.default")
def _roll(x, shifts, dims=()):
  return jnp.roll(x, tuple(shifts), axis=tuple(dims) if dims else None)


@_op("repeat.default")
def _repeat(x, repeats):
  return jnp.tile(x, tuple(repeats))


@_op("clone.default", "alias.default", "detach.default", "lift_fresh_copy.default",
     "contiguous.default", "alias_copy.default", "detach_copy.default")
def _identity(x, *unused):
  return x


@_op("_to_copy.default")
def _to_copy(x, dtype=None, *unused):
  return x if dtype is None else jnp.asarray(x).astype(dtype)


@_op("copy.default")
def _copy(x, src, non_blocking=False):
  return jnp.broadcast_to(jnp.asarray(src).astype(x.dtype), x.shape)


@_op("as_strided.default", "as_strided_copy.default")
def _as_strided(x, size, stride, storage_offset=None, *, in_stride=None):
  """A view by strides, for an input that is contiguous in torch (row-major, or its own
  strides `in_stride` from the graph's metadata): the identity when the view keeps the shape
  and (on dims longer than 1) the strides, else a gather from the row-major storage."""
  size, stride = tuple(size), tuple(stride)
  offset = storage_offset or 0
  if size == x.shape and not offset and in_stride is not None and all(
      s == t for n, s, t in zip(size, stride, in_stride) if n > 1):
    return x
  contiguous = tuple(int(np.prod(x.shape[i + 1:])) for i in range(x.ndim))
  if in_stride is not None and any(
      s != t for n, s, t in zip(x.shape, in_stride, contiguous) if n > 1):
    raise NotImplementedError(f"as_strided of a non-contiguous tensor (shape {x.shape}, "
                              f"strides {in_stride})")
  index = np.full(size, offset, np.int64)
  for axis, (n, s) in enumerate(zip(size, stride)):
    index = index + (np.arange(n) * s).reshape((1,) * axis + (n,) + (1,) * (len(size) - axis - 1))
  return jnp.reshape(x, (-1,))[index]


@_op("index.Tensor", "_unsafe_index.Tensor")
def _index(x, indices):
  index = tuple(slice(None) if i is None else i for i in indices)
  return x[index]


@_op("index_select.default")
def _index_select(x, dim, index):
  return jnp.take(x, index, axis=dim)


@_op("gather.default")
def _gather(x, dim, index, sparse_grad=False):
  return jnp.take_along_axis(x, index, axis=dim)


@_op("embedding.default")
def _embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
  return jnp.take(weight, indices, axis=0)


# Constructors.
def _default_dtype(value, dtype):
  if dtype is not None:
    return dtype
  if isinstance(value, bool):
    return jnp.bool_
  return jnp.int32 if isinstance(value, int) else jnp.float32


@_op("full.default")
def _full(size, fill_value, dtype=None, *unused):
  return jnp.full(tuple(size), fill_value, _default_dtype(fill_value, dtype))


@_op("zeros.default", "empty.memory_format", "new_zeros.default", "new_empty.default")
def _zeros(*args):
  if args and isinstance(args[0], jax.Array):  # new_zeros(self, size, dtype, ...)
    x, size, dtype = args[0], args[1], args[2]
    return jnp.zeros(tuple(size), dtype or x.dtype)
  return jnp.zeros(tuple(args[0]), args[1] if len(args) > 1 and args[1] else jnp.float32)


@_op("ones.default")
def _ones(size, dtype=None, *unused):
  return jnp.ones(tuple(size), dtype or jnp.float32)


@_op("new_ones.default")
def _new_ones(x, size, dtype=None, *unused):
  return jnp.ones(tuple(size), dtype or x.dtype)


@_op("new_full.default")
def _new_full(x, size, fill_value, dtype=None, *unused):
  return jnp.full(tuple(size), fill_value, dtype or x.dtype)


@_op("full_like.default")
def _full_like(x, fill_value, dtype=None, *unused):
  return jnp.full(x.shape, fill_value, dtype or x.dtype)


@_op("zeros_like.default", "empty_like.default")
def _zeros_like(x, dtype=None, *unused):
  return jnp.zeros(x.shape, dtype or x.dtype)


@_op("ones_like.default")
def _ones_like(x, dtype=None, *unused):
  return jnp.ones(x.shape, dtype or x.dtype)


@_op("scalar_tensor.default")
def _scalar_tensor(s, dtype=None, *unused):
  return jnp.asarray(s, dtype or jnp.float32)


@_op("arange.default")
def _arange(end, dtype=None, *unused):
  return jnp.arange(end, dtype=_default_dtype(end, dtype))


@_op("arange.start")
def _arange_start(start, end, dtype=None, *unused):
  return jnp.arange(start, end, dtype=_default_dtype(start + end, dtype))


@_op("arange.start_step")
def _arange_step(start, end, step=1, dtype=None, *unused):
  return jnp.arange(start, end, step, dtype=_default_dtype(start + end + step, dtype))


# Shapes and assertions of the dynamic batch.
@_op("sym_size.int")
def _sym_size(x, dim):
  return x.shape[dim]


@_op("sym_numel.default")
def _sym_numel(x):
  return int(np.prod(x.shape))


@_op("_assert_tensor_metadata.default", "_assert_scalar.default", "_assert_async.msg",
     "sym_constrain_range_for_size.default", "sym_constrain_range.default",
     "_assert_async.default")
def _no_op(*unused, **unused_kwargs):
  return None


# Python callables that appear in the graph (the batch size's arithmetic, tuple outputs).
_PYTHON: dict[Any, Callable[..., Any]] = {
    f: f for f in (operator.getitem, operator.add, operator.sub, operator.mul,
                   operator.floordiv, operator.truediv, operator.mod, operator.neg,
                   operator.pow, operator.eq, operator.ne, operator.lt, operator.le,
                   operator.gt, operator.ge, operator.and_, operator.or_, operator.not_,
                   math.ceil, math.floor, math.sqrt, math.trunc)}


def _python_callables(torch) -> None:
  """torch's symbolic-int helpers, evaluated on the concrete shapes of a trace."""
  for name, fn in (("sym_float", float), ("sym_int", int), ("sym_max", max), ("sym_min", min),
                   ("sym_not", operator.not_), ("sym_sqrt", math.sqrt),
                   ("_sym_sqrt", math.sqrt), ("sym_ite", lambda b, t, f: t if b else f)):
    if hasattr(torch, name):
      _PYTHON[getattr(torch, name)] = fn


# ----------------------------------------------------------------------------------------------
# Channels last inside. torch's convolutions take [N, C, *spatial]; XLA runs them (on CPU, and
# on GPUs and TPUs too) fastest with the channels minor, and a graph interpreted literally pays
# a transpose before and after every convolution. So a rank-r value computed by a layout-aware
# op is kept as `_ChannelsLast`: torch's logical [N, C, *S] stored as [N, *S, C]. The ops below
# read and write that layout directly; any other op gets the logical array back (one transpose)
# first, so the semantics are torch's whatever the graph does.

class _ChannelsLast:
  """A logical [N, C, *S] value stored as `data` [N, *S, C]."""
  __slots__ = ("data",)

  def __init__(self, data):
    self.data = data

  @property
  def ndim(self) -> int:
    return self.data.ndim

  @property
  def shape(self) -> tuple[int, ...]:
    s = self.data.shape
    return (s[0], s[-1]) + tuple(s[1:-1])

  @property
  def dtype(self):
    return self.data.dtype

  def logical(self):
    return jnp.moveaxis(self.data, -1, 1)


def _cl_perm(r: int) -> tuple[int, ...]:
  return (0,) + tuple(range(2, r)) + (1,)


def _to_cl(x) -> _ChannelsLast:
  return x if isinstance(x, _ChannelsLast) else _ChannelsLast(jnp.transpose(x, _cl_perm(x.ndim)))


def _axis(a: int, r: int) -> int:
  """The storage axis of logical axis `a` of a rank-r channels-last value."""
  a %= r
  return 0 if a == 0 else (r - 1 if a == 1 else a - 1)


def _logical(value):
  """`value` with every channels-last array (in lists and tuples too) in torch's layout."""
  if isinstance(value, _ChannelsLast):
    return value.logical()
  if isinstance(value, (list, tuple)):
    return type(value)(_logical(v) for v in value)
  return value


def _has_cl(value) -> bool:
  if isinstance(value, _ChannelsLast):
    return True
  if isinstance(value, (list, tuple)):
    return any(_has_cl(v) for v in value)
  return False


_CL_OPS: dict[Any, Callable[..., Any]] = {}
_CL_ALWAYS: set[Any] = set()  # ops that produce channels last even from logical inputs


def _cl_op(*names: str, always: bool = False):
  def register(fn):
    for name in names:
      _CL_OPS["aten." + name] = fn
      if always:
        _CL_ALWAYS.add("aten." + name)
    return fn
  return register


def _is_array(a) -> bool:
  return isinstance(a, (jax.Array, np.ndarray)) and a.ndim > 0


def _elementwise_cl(fn):
  """fn over channels-last storage: other array operands (rank <= r, broadcast as torch does)
  are brought to the same storage order."""
  def cl(*args):
    ranks = {a.ndim for a in args if isinstance(a, _ChannelsLast)}
    if len(ranks) != 1:
      return NotImplemented
    r = ranks.pop()
    new = []
    for a in args:
      if isinstance(a, _ChannelsLast):
        new.append(a.data)
      elif _is_array(a):
        if a.ndim > r:
          return NotImplemented
        a = jnp.reshape(a, (1,) * (r - a.ndim) + tuple(a.shape))
        new.append(jnp.transpose(a, _cl_perm(r)))
      else:
        new.append(a)
    return _ChannelsLast(fn(*new))
  return cl


_ELEMENTWISE = (
    "sigmoid", "tanh", "exp", "exp2", "log", "log2", "log10", "log1p", "expm1", "sqrt", "rsqrt",
    "reciprocal", "sin", "cos", "tan", "erf", "erfc", "atan", "asin", "acos", "sinh", "cosh",
    "neg", "abs", "sign", "sgn", "floor", "ceil", "round", "trunc", "logical_not",
    "bitwise_not", "isnan", "isinf", "relu", "gelu", "silu", "hardsigmoid", "hardswish", "mish",
    "softplus", "elu", "leaky_relu", "hardtanh", "clamp", "clamp_min", "clamp_max", "threshold",
    "add", "sub", "rsub", "mul", "div", "floor_divide", "remainder", "fmod", "pow", "maximum",
    "minimum", "atan2", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
    "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor", "where", "masked_fill",
    "clone", "alias", "detach", "lift_fresh_copy", "contiguous", "alias_copy", "detach_copy",
    "_to_copy")


def _register_elementwise() -> None:
  for key, fn in _OPS.items():
    if key.split(".")[1] in _ELEMENTWISE:
      _CL_OPS[key] = _elementwise_cl(fn)


@_cl_op("convolution.default", always=True)
def _convolution_cl(x, weight, bias, stride, padding, dilation, transposed, output_padding,
                    groups):
  k = x.ndim - 2
  if transposed or not 1 <= k <= 3:
    return NotImplemented
  x = _to_cl(x)
  spatial = "DHW"[-k:]
  stride, padding, dilation = (_tuple(v, k) for v in (stride, padding, dilation))
  out = lax.conv_general_dilated(
      x.data, weight.astype(x.dtype), window_strides=stride,
      padding=[(p, p) for p in padding], rhs_dilation=dilation, feature_group_count=groups,
      dimension_numbers=("N" + spatial + "C", "OI" + spatial, "N" + spatial + "C"))
  return _ChannelsLast(out if bias is None else out + bias.astype(out.dtype))


@_cl_op("_native_batch_norm_legit_no_training.default")
def _bn_cl(x, weight, bias, running_mean, running_var, momentum, eps):
  empty = jnp.zeros((0,), x.dtype)
  scale, shift = _bn_affine(weight, bias, running_mean, running_var, eps)
  return _ChannelsLast(x.data * scale.astype(x.dtype) + shift.astype(x.dtype)), empty, empty


@_cl_op("max_pool2d_with_indices.default", "max_pool3d_with_indices.default")
def _max_pool_cl(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
  if x.ndim - 2 != len(_pool_args(kernel_size, stride, padding)[1]):
    return NotImplemented
  return _ChannelsLast(_max_pool(x.data, kernel_size, stride, padding, dilation, ceil_mode,
                                 channels_last=True)), None


@_cl_op("avg_pool2d.default", "avg_pool3d.default")
def _avg_pool_cl(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
  if x.ndim - 2 != len(_pool_args(kernel_size, stride, padding)[1]):
    return NotImplemented
  return _ChannelsLast(_avg_pool(x.data, kernel_size, stride, padding, ceil_mode,
                                 count_include_pad, divisor_override, channels_last=True))


@_cl_op("_adaptive_avg_pool2d.default", "adaptive_avg_pool2d.default",
        "_adaptive_avg_pool3d.default")
def _adaptive_avg_pool_cl(x, output_size):
  if x.ndim - 2 != len(output_size):
    return NotImplemented
  return _ChannelsLast(_adaptive_avg_pool(x.data, output_size, channels_last=True))


@_cl_op("constant_pad_nd.default")
def _constant_pad_cl(x, pad, value=0):
  return _ChannelsLast(_constant_pad(x.data, pad, value, axis=_axis))


def _reduce_cl(fn, x, dim, keepdim, *rest):
  """A reduction over logical dims `dim` of a channels-last value."""
  r = x.ndim
  dims = _dims(dim, r)
  if dims is None:
    return fn(x.data, None, keepdim, *rest)
  out = fn(x.data, [_axis(d, r) for d in dims], keepdim, *rest)
  if keepdim:
    return _ChannelsLast(out)
  kept = [a for a in range(r) if a not in dims]  # logical axes left, in logical order
  stored = sorted(kept, key=lambda a: _axis(a, r))  # ... in storage order
  return jnp.transpose(out, [stored.index(a) for a in kept])


@_cl_op("mean.dim")
def _mean_cl(x, dim, keepdim=False, dtype=None):
  return _reduce_cl(_mean, x, dim, keepdim, dtype)


@_cl_op("sum.dim_IntList")
def _sum_cl(x, dim, keepdim=False, dtype=None):
  return _reduce_cl(_sum, x, dim, keepdim, dtype)


@_cl_op("amax.default")
def _amax_cl(x, dim=(), keepdim=False):
  return _reduce_cl(_amax, x, dim, keepdim)


@_cl_op("amin.default")
def _amin_cl(x, dim=(), keepdim=False):
  return _reduce_cl(_amin, x, dim, keepdim)


@_cl_op("_softmax.default", "softmax.int")
def _softmax_cl(x, dim, half_to_float=False):
  return _ChannelsLast(jax.nn.softmax(x.data, axis=_axis(dim, x.ndim)))


@_cl_op("_log_softmax.default", "log_softmax.int")
def _log_softmax_cl(x, dim, half_to_float=False):
  return _ChannelsLast(jax.nn.log_softmax(x.data, axis=_axis(dim, x.ndim)))


@_cl_op("cat.default")
def _cat_cl(tensors, dim=0):
  ranks = {t.ndim for t in tensors if isinstance(t, _ChannelsLast)}
  if len(ranks) != 1 or any(t.ndim not in ranks for t in tensors):
    return NotImplemented
  r = ranks.pop()
  return _ChannelsLast(jnp.concatenate([_to_cl(t).data for t in tensors], axis=_axis(dim, r)))


@_cl_op("slice.Tensor")
def _slice_cl(x, dim=0, start=None, end=None, step=1):
  return _ChannelsLast(_slice(x.data, _axis(dim, x.ndim), start, end, step))


@_cl_op("split_with_sizes.default")
def _split_with_sizes_cl(x, split_sizes, dim=0):
  return [_ChannelsLast(t) for t in _split_with_sizes(x.data, split_sizes, _axis(dim, x.ndim))]


@_cl_op("split.Tensor")
def _split_cl(x, split_size, dim=0):
  axis = _axis(dim, x.ndim)
  return [_ChannelsLast(t) for t in jnp.split(
      x.data, list(range(split_size, x.data.shape[axis], split_size)), axis=axis)]


@_cl_op("expand.default")
def _expand_cl(x, size, implicit=False):
  if len(size) != x.ndim:
    return NotImplemented
  size = [size[i] for i in _cl_perm(x.ndim)]
  return _ChannelsLast(_expand(x.data, size))


# shapes read the logical shape; the metadata assertion is a no-op either way
for _key in ("aten.sym_size.int", "aten.sym_numel.default", "aten._assert_tensor_metadata.default"):
  _CL_OPS[_key] = _OPS[_key]
_CL_OPS[operator.getitem] = operator.getitem
_register_elementwise()


# ----------------------------------------------------------------------------------------------
# The graph: an ExportedProgram as a plan of steps over named values.

@dataclasses.dataclass(frozen=True)
class _Ref:
  """A value of the graph, by its node's name."""
  name: str


@dataclasses.dataclass(frozen=True)
class _Step:
  name: str
  target: str
  fn: Callable[..., Any]
  args: tuple
  kwargs: dict
  module: str  # the innermost module path the node came from ("" at top level)
  cl: Callable[..., Any] | None = None  # the op on channels-last values (None: logical only)
  cl_always: bool = False  # use `cl` even when no argument is channels last (convolutions)

  def __call__(self, args, kwargs):
    if self.cl is not None and (self.cl_always or _has_cl(args)):
      out = self.cl(*args, **kwargs)
      if out is not NotImplemented:
        return out
    return self.fn(*_logical(args), **_logical(kwargs) if kwargs else {})


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("from_torch needs PyTorch (pip install torch)") from e
  _python_callables(torch)
  return torch


def _dtype(torch, dtype):
  table = {torch.float32: jnp.float32, torch.float64: jnp.float32, torch.float16: jnp.float16,
           torch.bfloat16: jnp.bfloat16, torch.int64: jnp.int32, torch.int32: jnp.int32,
           torch.int16: jnp.int16, torch.int8: jnp.int8, torch.uint8: jnp.uint8,
           torch.bool: jnp.bool_}
  if dtype not in table:
    raise NotImplementedError(f"tensor dtype {dtype} is not supported")
  return table[dtype]


def _static(torch, value, where: str):
  """A node argument as plain Python: nodes -> _Ref, dtypes -> jnp dtypes, devices, layouts
  and memory formats -> None."""
  fx = torch.fx
  if isinstance(value, fx.Node):
    return _Ref(value.name)
  if isinstance(value, (list, tuple)):
    return type(value)(_static(torch, v, where) for v in value)
  if isinstance(value, torch.dtype):
    return _dtype(torch, value)
  if isinstance(value, (torch.device, torch.layout, torch.memory_format)):
    return None
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  raise NotImplementedError(f"argument {value!r} of type {type(value).__name__} at {where}")


def _bind(target, args, kwargs) -> tuple:
  """The op's arguments in schema order, defaults filled in."""
  out = []
  for i, a in enumerate(target._schema.arguments):  # pylint: disable=protected-access
    if not a.kwarg_only and i < len(args):
      out.append(args[i])
    elif a.name in kwargs:
      out.append(kwargs[a.name])
    elif a.has_default_value():
      out.append(a.default_value)
    else:
      raise NotImplementedError(f"{target}: missing argument {a.name!r}")
  return tuple(out)


def _module_path(node) -> str:
  stack = node.meta.get("nn_module_stack") or {}
  paths = [v[0] for v in stack.values() if isinstance(v, tuple) and v and v[0]]
  return paths[-1] if paths else ""


def _module_paths(node) -> set[str]:
  stack = node.meta.get("nn_module_stack") or {}
  return {v[0] for v in stack.values() if isinstance(v, tuple) and v and isinstance(v[0], str)}


def _host_array(torch, tensor) -> np.ndarray:
  """A torch tensor as an owned numpy array: floats as float32, integers and bools kept."""
  t = tensor.detach().cpu()
  if t.is_floating_point():
    t = t.to(torch.float32)
  elif t.dtype == torch.int64:
    t = t.to(torch.int32)  # JAX's default integer (64-bit types need jax_enable_x64)
  return np.array(t.numpy(), copy=True)


class Graph:
  """A decomposed ExportedProgram as a plan that JAX can run: `Graph(program)`, then
  `graph.params` (name -> array) and `graph.run(params, x, until=None)`.

  Every op is checked at construction: an op the interpreter does not translate raises
  NotImplementedError naming the op and the node.
  """

  def __init__(self, program, channels_last: bool = True):
    torch = _torch()
    self.channels_last = channels_last
    self._torch = torch
    sig = program.graph_signature
    kinds = torch.export.graph_signature.InputKind
    self.params: dict[str, np.ndarray] = {}
    self.placeholders: dict[str, str] = {}  # placeholder node name -> params key
    self.input_name = None
    for spec in sig.input_specs:
      name = spec.arg.name
      if spec.kind == kinds.USER_INPUT:
        if self.input_name is not None:
          raise NotImplementedError("the module takes several inputs; from_torch needs one "
                                    "image tensor")
        self.input_name = name
      elif spec.kind in (kinds.PARAMETER, kinds.BUFFER, kinds.CONSTANT_TENSOR):
        value = program.state_dict.get(spec.target)
        if value is None:
          value = program.constants[spec.target]
        self.params[spec.target] = _host_array(torch, value)
        self.placeholders[name] = spec.target
      else:
        raise NotImplementedError(f"graph input {name} of kind {spec.kind.name} is not "
                                  "supported")
    if self.input_name is None:
      raise NotImplementedError("the module takes no tensor input")
    outputs = [spec for spec in sig.output_specs]
    kinds_out = torch.export.graph_signature.OutputKind
    if any(spec.kind != kinds_out.USER_OUTPUT for spec in outputs):
      raise NotImplementedError(
          "the program mutates its buffers (" + ", ".join(
              f"{s.kind.name} {s.target}" for s in outputs
              if s.kind != kinds_out.USER_OUTPUT) + "): export the module in eval mode")
    if len(outputs) != 1:
      raise NotImplementedError(f"the module returns {len(outputs)} values; from_torch needs "
                                "one logits tensor")
    self.output = outputs[0].arg.name
    self.nodes = {n.name: n for n in program.graph.nodes}
    self.input_meta = self.nodes[self.input_name].meta.get("val")
    self.steps: list[_Step] = []
    unsupported = []
    for node in program.graph.nodes:
      if node.op in ("placeholder", "output"):
        continue
      where = f"node {node.name!r}" + (f" (module {_module_path(node)!r})"
                                       if _module_path(node) else "")
      if node.op != "call_function":
        unsupported.append(f"{node.op} {node.target} at {where}")
        continue
      step = self._step(node, where)
      if step is None:
        unsupported.append(f"{node.target} at {where}")
      else:
        self.steps.append(step)
    if unsupported:
      raise NotImplementedError(
          f"{len(unsupported)} op(s) of the graph have no JAX translation in "
          f"advbound.models.torch_import: " + "; ".join(unsupported[:10]) +
          ("" if len(unsupported) <= 10 else f"; and {len(unsupported) - 10} more"))
    self.index = {s.name: i for i, s in enumerate(self.steps)}

  def _step(self, node, where: str) -> _Step | None:
    torch = self._torch
    target = node.target
    args = _static(torch, node.args, where)
    kwargs = {k: _static(torch, v, where) for k, v in node.kwargs.items()}
    if isinstance(target, torch._ops.OpOverload):  # pylint: disable=protected-access
      fn = _OPS.get(str(target))
      if fn is None:
        return None
      args, kwargs = _bind(target, args, kwargs), {}
      if str(target).startswith("aten.as_strided"):
        meta = node.args[0].meta.get("val")
        stride = meta.stride() if meta is not None else None
        kwargs = {"in_stride": tuple(int(s) if _concrete(s) else -1 for s in stride)
                  if stride is not None else None}
    elif target in _PYTHON:
      fn = _PYTHON[target]
    else:
      return None
    key = str(target) if target not in _PYTHON else target
    cl = _CL_OPS.get(key) if self.channels_last else None
    return _Step(node.name, str(target), fn, args, kwargs, _module_path(node), cl,
                 key in _CL_ALWAYS)

  def ancestors(self, name: str) -> set[str]:
    """The names of the steps `name` depends on, itself included."""
    seen, todo = set(), [name]
    while todo:
      n = todo.pop()
      if n in seen or n not in self.index:
        continue
      seen.add(n)
      todo.extend(a.name for a in self.nodes[n].all_input_nodes)
    return seen

  def run(self, params: dict, x: jax.Array, until: str | None = None) -> Any:
    """The graph's output (or the value of node `until`) for input `x` in the module's own
    layout (or a `_ChannelsLast` of it); params as `self.params` (arrays of any kind)."""
    env: dict[str, Any] = {self.input_name: x}
    for name, key in self.placeholders.items():
      env[name] = params[key]
    target = self.output if until is None else until
    needed = self.ancestors(target) if until is not None else None

    def value(a):
      if isinstance(a, _Ref):
        return env[a.name]
      if isinstance(a, (list, tuple)):
        return type(a)(value(v) for v in a)
      return a

    for step in self.steps:
      if needed is not None and step.name not in needed:
        continue
      try:
        env[step.name] = step(value(step.args), {k: value(v) for k, v in
                                                 step.kwargs.items()})
      except NotImplementedError as e:
        raise NotImplementedError(f"{e} (at node {step.name!r}: {step.target})") from e
      except Exception as e:
        e.add_note(f"in advbound.models.torch_import, at node {step.name!r}: {step.target}"
                   + (f" (module {step.module!r})" if step.module else ""))
        raise
      if step.name == target:
        break
    return _logical(env[target])

  def embedding_node(self, module: str, valid: Sequence[str]) -> str:
    """The node whose value is the input of submodule `module` (its nodes' one input from
    outside it that is an activation, not a parameter or a shape)."""
    inside = {s.name for s in self.steps if module in _module_paths(self.nodes[s.name])}
    if not inside:
      names = sorted(set(valid) | {p for s in self.steps for p in
                                   _module_paths(self.nodes[s.name]) if p})
      raise ValueError(f"embedding={module!r} names no module of the graph; modules "
                       f"include {names[:30]}{' ...' if len(names) > 30 else ''}")
    inputs = []
    for name in self.index:
      if name not in inside:
        continue
      for a in self.nodes[name].all_input_nodes:
        if a.name in inside or a.name in self.placeholders or a.name in inputs:
          continue
        if _is_tensor(self._torch, a.meta.get("val")):
          inputs.append(a.name)
    if len(inputs) != 1:
      raise ValueError(f"module {module!r} has {len(inputs)} activation inputs in the graph "
                       f"({inputs}); embedding needs a module with exactly one (e.g. the "
                       "final linear layer)")
    return inputs[0]


def _concrete(s) -> bool:
  try:
    int(s)
    return True
  except Exception:  # pylint: disable=broad-except
    return False


def _is_tensor(torch, value) -> bool:
  return isinstance(value, torch.Tensor)


# ----------------------------------------------------------------------------------------------
# from_torch

def _check_shape(input_shape) -> tuple[int, int, int]:
  try:
    shape = tuple(int(s) for s in input_shape)
  except (TypeError, ValueError):
    raise ValueError(f"input_shape must be 3 positive sizes, got {input_shape!r}") from None
  if len(shape) != 3 or min(shape) < 1:
    raise ValueError(f"input_shape must be the module's per-example image shape, 3 positive "
                     f"sizes like (3, 32, 32) for NCHW, got {input_shape!r}")
  return shape


def export(module, input_shape: Sequence[int]):
  """`module` as a torch.export.ExportedProgram: exported in eval mode with a dynamic batch
  dimension (the caller's training flags are restored, its weights untouched). ValueError
  naming the shape when torch cannot run the module on a batch of `input_shape`."""
  torch = _torch()
  shape = tuple(int(s) for s in input_shape)
  flags = [(m, m.training) for m in module.modules()]
  module.eval()
  try:
    example = torch.zeros((2,) + shape)
    batch = torch.export.Dim("batch")
    try:
      return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as export_error:  # pylint: disable=broad-except
      try:
        with torch.no_grad():
          module(example)
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(f"input_shape {shape} is not what {type(module).__name__} takes: "
                         f"torch fails on a batch of shape {(2,) + shape}: {e}") from e
      raise export_error
  finally:
    for m, flag in flags:
      m.training = flag


def _program(torch, module, shape):
  """(decomposed ExportedProgram, default source, module names)."""
  if isinstance(module, (str, os.PathLike)):
    path = os.fspath(module)
    if not os.path.exists(path):
      raise FileNotFoundError(f"no exported program at {path!r} (write one with "
                              "torch.export.save)")
    program, source, names = torch.export.load(path), path, ()
  elif isinstance(module, torch.export.ExportedProgram):
    program, source, names = module, "torch.export.ExportedProgram", ()
  elif isinstance(module, torch.nn.Module):
    program = export(module, shape)
    source = type(module).__name__
    names = [n for n, _ in module.named_modules() if n]
  else:
    raise TypeError(f"module must be a torch.nn.Module, an ExportedProgram or a .pt2 path, "
                    f"got {type(module).__name__}")
  return program.run_decompositions(), source, names


def from_torch(module, *, input_shape, input_range=(0.0, 1.0), mean=None, std=None,
               embedding: str | None = None, num_classes: int | None = None,
               layout: str = "NCHW", source: str | None = None,
               channels_last: bool = True) -> Imported:
  """A PyTorch classifier as an `Imported` model of pure JAX functions.

  Args:
    module: a torch.nn.Module (exported here in eval mode with a dynamic batch; its training
      flags are restored and its weights never touched), a torch.export.ExportedProgram, or
      the path of a `.pt2` file written by torch.export.save.
    input_shape: the module's own per-example input shape, e.g. (3, 32, 32) for NCHW
      ((32, 32, 3) with layout="NHWC").
    input_range: (lo, hi), the pixel range the module takes (before mean/std).
    mean, std: per-channel normalisation applied before the module (None: the module
      normalises itself, or takes its range as is).
    embedding: the name of a submodule (as in module.named_modules(), e.g. "fc") whose input
      is the embedding; `Imported.embed(params, x)` then returns it flattened to [N, D].
    num_classes: K, checked against the graph's output when given.
    layout: "NCHW" (the module takes channels first) or "NHWC".
    source: what the model is, for reports (default: the class name or the path).
    channels_last: run convolutions, batch norm, pooling and elementwise ops on channels-last
      arrays inside (the default; faster), or interpret the graph literally in torch's layout
      (the same values up to float rounding; for comparisons).

  Returns:
    Imported with `apply(params, x [N, H, W, C]) -> logits float [N, K]` and params the dict
    of the module's parameters, buffers and constants by name.

  Raises:
    NotImplementedError: an op of the graph has no translation (naming the op and node).
    ValueError: a bad input_shape, layout, embedding name or num_classes.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
  shape = _check_shape(input_shape)
  torch = _torch()
  program, default_source, names = _program(torch, module, shape)
  graph = Graph(program, channels_last=channels_last)
  meta = graph.input_meta
  batch = None
  if meta is not None:
    got = tuple(meta.shape)
    if len(got) != 4 or tuple(int(s) for s in got[1:]) != shape:
      raise ValueError(f"input_shape {shape} does not match the program's input "
                       f"{tuple(str(s) for s in got)}")
    batch = int(got[0]) if _concrete(got[0]) and not isinstance(got[0], torch.SymInt) else None
  image_shape = shape if layout == "NHWC" else (shape[1], shape[2], shape[0])
  target = graph.embedding_node(embedding, names) if embedding is not None else None
  apply = _Apply(graph, image_shape, layout, batch, None)
  params = {k: jnp.asarray(v) for k, v in graph.params.items()}
  out = jax.eval_shape(apply, params, jax.ShapeDtypeStruct((batch or 2,) + image_shape,
                                                           jnp.float32))
  if len(out.shape) != 2 or out.shape[0] != (batch or 2):
    raise ValueError(f"the module returns shape {out.shape} for a batch of {batch or 2}; "
                     "from_torch needs logits [N, K]")
  if num_classes is not None and int(num_classes) != out.shape[1]:
    raise ValueError(f"num_classes={num_classes} but the module returns {out.shape[1]} logits")
  embed = _Apply(graph, image_shape, layout, batch, target) if target is not None else None
  return Imported(apply=apply, params=params, input_shape=image_shape,
                  num_classes=int(out.shape[1]), input_range=input_range, mean=mean, std=std,
                  embed=embed, source=source or default_source)


class _Apply:
  """`apply(params, x [N, H, W, C]) -> logits` (or, with `until`, the flattened value of that
  node: [N, D]) of a Graph. Compares by identity (jit caches per Imported)."""

  def __init__(self, graph: Graph, image_shape, layout: str, batch: int | None,
               until: str | None):
    self.graph, self.image_shape, self.layout = graph, tuple(image_shape), layout
    self.batch, self.until = batch, until

  def __call__(self, params, x):
    x = jnp.asarray(x)
    if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
      raise ValueError(f"expected images [N, {', '.join(map(str, self.image_shape))}] "
                       f"(NHWC), got shape {x.shape}")
    if self.batch is not None and x.shape[0] != self.batch:
      raise ValueError(f"the program was exported with a fixed batch of {self.batch}, got "
                       f"{x.shape[0]} images: export it with a dynamic batch "
                       "(torch.export.Dim) or pass the module itself")
    if self.layout == "NCHW":  # NHWC is the channels-last storage of the module's NCHW
      x = _ChannelsLast(x) if self.graph.channels_last else jnp.transpose(x, (0, 3, 1, 2))
    out = self.graph.run(params, x, self.until)
    if self.until is not None:
      out = jnp.reshape(out, (out.shape[0], -1))
    return out
