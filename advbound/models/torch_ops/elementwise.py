"""Elementwise ops of torch_import's table: activations (with torch's subgradients at kinks),
arithmetic, comparisons, where / masked_fill."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from advbound.models.torch_ops import _channel_shape, _float, _op


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
