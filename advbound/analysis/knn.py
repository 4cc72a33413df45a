"""Exact k-nearest-neighbour distances in compiled chunks (the blind-spot study's distance of a
test input to the training set, measured in a model's embedding space).

For a chunk of queries, the reference set is scanned in blocks: squared distances by the
expansion ||q||^2 - 2 q.r + ||r||^2 (matrix products), the running `k + margin` smallest kept by
`lax.top_k` and merged block by block. The expansion loses precision when two points are close
(float32 cancellation: duplicates come out at ~1e-3 of the squared norms rather than 0), so the
kept candidates are re-measured directly as ||q - r|| before the final k are chosen: the
returned distances are exact to float32 rounding of the differences, duplicates give 0, and
only a candidate that the expansion ranked beyond `k + margin` could be missed.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from advbound.runtime import batching, checks


@functools.partial(jax.jit, static_argnums=(2, 3))
def _chunk(queries, blocks, keep: int, k: int):
  """queries [Q, D]; blocks [B, S, D] (the reference padded with +inf-distance rows by a mask
  in the last feature: see `knn`). Returns (distances [Q, k], indices [Q, k])."""
  q2 = jnp.sum(queries * queries, axis=1, keepdims=True)
  num_blocks, size = blocks.shape[0], blocks.shape[1]

  def body(carry, inputs):
    best_d, best_i = carry
    block, b = inputs
    valid = block[:, -1] > 0
    r = block[:, :-1]
    d2 = q2 - 2.0 * queries @ r.T + jnp.sum(r * r, axis=1)[None, :]
    d2 = jnp.where(valid[None, :], d2, jnp.inf)
    idx = b * size + jnp.arange(size)
    all_d = jnp.concatenate([best_d, d2], axis=1)
    all_i = jnp.concatenate([best_i, jnp.broadcast_to(idx, d2.shape)], axis=1)
    neg, pos = jax.lax.top_k(-all_d, keep)
    return (-neg, jnp.take_along_axis(all_i, pos, axis=1)), None

  init = (jnp.full((queries.shape[0], keep), jnp.inf, queries.dtype),
          jnp.zeros((queries.shape[0], keep), jnp.int32))
  (_, cand), _ = jax.lax.scan(body, init, (blocks, jnp.arange(num_blocks)))
  rows = blocks.reshape(-1, blocks.shape[-1])[cand]  # [Q, keep, D + 1]
  ref, ok = rows[..., :-1], rows[..., -1] > 0
  exact = jnp.sqrt(jnp.sum((ref - queries[:, None, :]) ** 2, axis=-1))
  exact = jnp.where(ok, exact, jnp.inf)
  neg, pos = jax.lax.top_k(-exact, k)
  return -neg, jnp.take_along_axis(cand, pos, axis=1)


def knn(queries, reference, k: int = 5, *, margin: int = 16, query_chunk: int = 1024,
        reference_block: int = 8192):
  """The k nearest reference points of every query, by L2 distance.

  Args:
    queries: float [Q, ...] (flattened to [Q, D]); reference: float [R, ...] with the same D.
    k: neighbours (1 <= k <= R); margin: extra candidates kept from the expansion before the
      exact re-measurement.
    query_chunk: queries per compiled call; reference_block: reference rows per scanned block.

  Returns:
    (distances float32 [Q, k] ascending, indices int32 [Q, k] into reference; ties in any order).
  """
  queries = np.asarray(queries, np.float32).reshape(len(queries), -1)
  reference = np.asarray(reference, np.float32).reshape(len(reference), -1)
  if queries.shape[1] != reference.shape[1]:
    raise ValueError(f"queries have {queries.shape[1]} features, reference {reference.shape[1]}")
  n_ref = len(reference)
  k = checks.check_count(k, "k", n_ref)
  checks.check_positive(margin, "margin", allow_zero=True, integer=True)
  if not (np.all(np.isfinite(queries)) and np.all(np.isfinite(reference))):
    raise ValueError("queries and reference must be finite")
  size = min(int(reference_block), n_ref)
  num_blocks = -(-n_ref // size)
  padded = np.zeros((num_blocks * size, reference.shape[1] + 1), np.float32)
  padded[:n_ref, :-1] = reference
  padded[:n_ref, -1] = 1.0  # the validity flag rides along as the last feature
  blocks = jnp.asarray(padded.reshape(num_blocks, size, -1))
  keep = min(k + int(margin), n_ref)
  d, i = batching.map_chunks(lambda q: _chunk(q, blocks, keep, k), queries,
                             chunk_size=query_chunk)
  return np.asarray(d), np.asarray(i)


def mean_knn_distance(queries, reference, k: int = 5, **kwargs) -> np.ndarray:
  """float32 [Q]: the mean distance of each query to its k nearest reference points (the
  blind-spot paper's distance to the training set, k = 5)."""
  return knn(queries, reference, k, **kwargs)[0].mean(axis=1)
