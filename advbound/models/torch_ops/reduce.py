"""Reductions of torch_import's table: mean, sum, prod, amax / amin, max / min, argmax,
any / all, var / std, vector norms, logsumexp, cumsum."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from advbound.models.torch_ops import _dims, _float, _op


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

