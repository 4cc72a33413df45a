"""The op table of advbound.models.torch_import: the registry and what the op families share.

`_OPS` maps "aten.<name>.<overload>" to a function of the op's arguments in schema order
(defaults filled in from the schema), returning a jax value (or a tuple, for multi-output ops);
`_PYTHON` maps the Python callables that appear in a graph to what computes them. The families
register their ops with `_op` when imported (torch_import imports them all):
  elementwise    activations, arithmetic, comparisons
  nn             matrix products, convolution, batch/layer/group norm, pooling, padding,
                 upsampling, softmax
  reduce         mean, sum, amax, var, norms, ...
  shape          views, permutes, concatenation, slicing, indexing, constructors, sym_size
  channels_last  `_ChannelsLast` and the ops that read and write that layout directly
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import jax.numpy as jnp

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


# Argument conventions the families share.
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


def _tuple(v, k: int) -> tuple[int, ...]:
  v = (v,) if isinstance(v, int) else tuple(v)
  return v * k if len(v) == 1 else v


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
