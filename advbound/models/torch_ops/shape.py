"""Shape ops of torch_import's table: views, permutes, concatenation, slicing, splitting,
copies, strided views, indexing, constructors (zeros, full, arange, ...), and the dynamic
batch's sizes and assertions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from advbound.models.torch_ops import _dims, _op


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

