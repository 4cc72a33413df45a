"""Channels last inside. torch's convolutions take [N, C, *spatial]; XLA runs them (on CPU, and
on GPUs and TPUs too) fastest with the channels minor, and a graph interpreted literally pays
a transpose before and after every convolution. So a rank-r value computed by a layout-aware
op is kept as `_ChannelsLast`: torch's logical [N, C, *S] stored as [N, *S, C]. The ops below
read and write that layout directly; any other op gets the logical array back (one transpose)
first, so the semantics are torch's whatever the graph does.

`_CL_OPS` maps an op to its channels-last variant (NotImplemented: fall back to the logical
op); `_CL_ALWAYS` names those used even when no argument is channels last (convolutions).
Importing this module registers the variants of the ops of every family."""

from __future__ import annotations

import operator
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from advbound.models.torch_ops import _OPS, _dims, _tuple
from advbound.models.torch_ops import elementwise  # noqa: F401  (registers its ops first)
from advbound.models.torch_ops.nn import (_adaptive_avg_pool, _avg_pool, _bn_affine,
                                          _constant_pad, _max_pool, _pool_args)
from advbound.models.torch_ops.reduce import _amax, _amin, _mean, _sum
from advbound.models.torch_ops.shape import _expand, _slice, _split_with_sizes


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
